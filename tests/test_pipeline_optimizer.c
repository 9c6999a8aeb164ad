/* The optimizer's decision (src/pipeline/optimizer.h) as a pure function: it aims the
 * first-segment length at the TTFA target through the measured cost per character, within its
 * bounds, a step at most, not at all inside the dead band or without figures. */
#include "harness.h"
#include "pipeline/optimizer.h"

#include <string.h>

static const koe_opt_bounds B = {
    .lo = 12, .hi = 150, .target = 0.150, .max_step = 1.5, .deadband = 0.1};

/* n samples costing `rate` s per character plus `over` s, first segments of varied length */
static size_t fill(koe_opt_sample *s, size_t n, double rate, double over) {
    for (size_t i = 0; i < n; i++) {
        s[i].first_chars = 10 + 5 * i;
        s[i].first_synth = rate * (double)s[i].first_chars;
        s[i].ttfa = s[i].first_synth + over;
        s[i].has_next = s[i].starved = 0;
    }
    return n;
}

static void test_lowers_toward_target(void) {
    koe_opt_sample s[10];
    char why[240];
    /* 10 ms a character + 20 ms: 13 characters meet 150 ms; from 32, one step of 1.5 at most */
    size_t n = fill(s, 10, 0.010, 0.020);
    int next = koe_opt_propose(s, n, 32, &B, NULL, why, sizeof why);
    KT_CHECK(next == 21, "32 -> %d", next);
    KT_CHECK(strstr(why, "first-segment-max 32 -> 21") != NULL, "reason: %s", why);
    next = koe_opt_propose(s, n, 21, &B, NULL, why, sizeof why);
    KT_CHECK(next == 14, "21 -> %d", next);
    /* at 14 the aim (13) is inside the dead band: keep, and say nothing */
    next = koe_opt_propose(s, n, 14, &B, NULL, why, sizeof why);
    KT_CHECK(next == 14 && why[0] == 0, "14 -> %d (%s)", next, why);
}

static void test_raises_when_fast(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.0001, 0.005); /* a fast engine: the target allows far more */
    KT_CHECK(koe_opt_propose(s, n, 32, &B, NULL, NULL, 0) == 48, "one step up");
    KT_CHECK(koe_opt_propose(s, n, 120, &B, NULL, NULL, 0) == 150, "never above the upper bound");
    KT_CHECK(koe_opt_propose(s, n, 140, &B, NULL, NULL, 0) == 140, "inside the dead band: keep");
}

static void test_bounds_and_no_figures(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.100, 0.050); /* far too slow: the aim is below one character */
    KT_CHECK(koe_opt_propose(s, n, 16, &B, NULL, NULL, 0) == 12, "never below the lower bound");
    KT_CHECK(koe_opt_propose(s, 0, 32, &B, NULL, NULL, 0) == 32, "no figures: keep");
    koe_opt_sample empty[3] = {{0.2, 0.1, 0, 0, 0}, {0.2, 0, 10, 0, 0}, {0.05, 0.1, 10, 0, 0}};
    KT_CHECK(koe_opt_propose(empty, 3, 32, &B, NULL, NULL, 0) == 32, "unusable figures: keep");
}

/* Streams that ran dry after their first segment: continuity before TTFA. */
static void test_starved_streams_raise(void) {
    koe_opt_sample s[10];
    char why[240];
    size_t n = fill(s, 10, 0.010, 0.020); /* TTFA alone would lower 32 -> 21 */
    for (size_t i = 0; i < n; i++) s[i].has_next = 1;
    s[3].starved = 1; /* 1 of 10: not more than 1 in 10, but no step down either */
    koe_opt_state st = {0};
    KT_CHECK(koe_opt_propose(s, n, 32, &B, &st, why, sizeof why) == 32, "one starved: keep");
    s[7].starved = 1; /* 2 of 10: up one step, whatever TTFA says */
    int next = koe_opt_propose(s, n, 32, &B, &st, why, sizeof why);
    KT_CHECK(next == 48, "32 -> %d", next);
    KT_CHECK(strstr(why, "2 of 10 streams ran dry") != NULL, "reason: %s", why);
    KT_CHECK(st.floor == 48 && st.floor_left == KOE_OPT_FLOOR_DECISIONS, "floor %d for %d",
             st.floor, st.floor_left);
    /* streams without a second segment say nothing about it */
    for (size_t i = 0; i < n; i++) s[i].has_next = 0;
    koe_opt_state st2 = {0};
    KT_CHECK(koe_opt_propose(s, n, 32, &B, &st2, NULL, 0) == 21, "no second segments: TTFA");
}

static void test_floor_holds_then_expires(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.010, 0.020); /* TTFA wants 13 */
    for (size_t i = 0; i < n; i++) s[i].has_next = 1;
    koe_opt_state st = {.floor = 48, .floor_left = 2};
    KT_CHECK(koe_opt_propose(s, n, 48, &B, &st, NULL, 0) == 48, "floor holds (1)");
    KT_CHECK(koe_opt_propose(s, n, 48, &B, &st, NULL, 0) == 48, "floor holds (2)");
    KT_CHECK(st.floor_left == 0, "floor used up");
    KT_CHECK(koe_opt_propose(s, n, 48, &B, &st, NULL, 0) == 32, "then TTFA again: 48 -> 32");
    /* already at the top: a starved stream cannot raise it further */
    s[0].starved = s[1].starved = 1;
    KT_CHECK(koe_opt_propose(s, n, 150, &B, &st, NULL, 0) == 150, "at the upper bound");
}

int main(void) {
    kt_run("starved streams raise it", test_starved_streams_raise);
    kt_run("the floor holds, then expires", test_floor_holds_then_expires);
    kt_run("lowers toward the target", test_lowers_toward_target);
    kt_run("raises when fast", test_raises_when_fast);
    kt_run("bounds, no figures", test_bounds_and_no_figures);
    return kt_finish();
}
