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
    }
    return n;
}

static void test_lowers_toward_target(void) {
    koe_opt_sample s[10];
    char why[240];
    /* 10 ms a character + 20 ms: 13 characters meet 150 ms; from 32, one step of 1.5 at most */
    size_t n = fill(s, 10, 0.010, 0.020);
    int next = koe_opt_propose(s, n, 32, &B, why, sizeof why);
    KT_CHECK(next == 21, "32 -> %d", next);
    KT_CHECK(strstr(why, "first-segment-max 32 -> 21") != NULL, "reason: %s", why);
    next = koe_opt_propose(s, n, 21, &B, why, sizeof why);
    KT_CHECK(next == 14, "21 -> %d", next);
    /* at 14 the aim (13) is inside the dead band: keep, and say nothing */
    next = koe_opt_propose(s, n, 14, &B, why, sizeof why);
    KT_CHECK(next == 14 && why[0] == 0, "14 -> %d (%s)", next, why);
}

static void test_raises_when_fast(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.0001, 0.005); /* a fast engine: the target allows far more */
    KT_CHECK(koe_opt_propose(s, n, 32, &B, NULL, 0) == 48, "one step up");
    KT_CHECK(koe_opt_propose(s, n, 120, &B, NULL, 0) == 150, "never above the upper bound");
    KT_CHECK(koe_opt_propose(s, n, 140, &B, NULL, 0) == 140, "inside the dead band: keep");
}

static void test_bounds_and_no_figures(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.100, 0.050); /* far too slow: the aim is below one character */
    KT_CHECK(koe_opt_propose(s, n, 16, &B, NULL, 0) == 12, "never below the lower bound");
    KT_CHECK(koe_opt_propose(s, 0, 32, &B, NULL, 0) == 32, "no figures: keep");
    koe_opt_sample empty[3] = {{0.2, 0.1, 0}, {0.2, 0, 10}, {0.05, 0.1, 10}};
    KT_CHECK(koe_opt_propose(empty, 3, 32, &B, NULL, 0) == 32, "unusable figures: keep");
}

int main(void) {
    kt_run("lowers toward the target", test_lowers_toward_target);
    kt_run("raises when fast", test_raises_when_fast);
    kt_run("bounds, no figures", test_bounds_and_no_figures);
    return kt_finish();
}
