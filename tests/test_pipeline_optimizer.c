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
        s[i].first_audio = 0;
        s[i].queue_wait = 0;
    }
    return n;
}

static void test_lowers_toward_target(void) {
    koe_opt_sample s[10];
    char why[240];
    /* 10 ms a character + 20 ms: 13 characters meet 150 ms; from 32, one step of 1.5 at most */
    size_t n = fill(s, 10, 0.010, 0.020);
    int next = koe_opt_propose(s, n, 32, NULL, &B, NULL, why, sizeof why);
    KT_CHECK(next == 21, "32 -> %d", next);
    KT_CHECK(strstr(why, "first-segment-max 32 -> 21") != NULL, "reason: %s", why);
    next = koe_opt_propose(s, n, 21, NULL, &B, NULL, why, sizeof why);
    KT_CHECK(next == 14, "21 -> %d", next);
    /* at 14 the aim (13) is inside the dead band: keep, and say nothing */
    next = koe_opt_propose(s, n, 14, NULL, &B, NULL, why, sizeof why);
    KT_CHECK(next == 14 && why[0] == 0, "14 -> %d (%s)", next, why);
}

static void test_raises_when_fast(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.0001, 0.005); /* a fast engine: the target allows far more */
    KT_CHECK(koe_opt_propose(s, n, 32, NULL, &B, NULL, NULL, 0) == 48, "one step up");
    KT_CHECK(koe_opt_propose(s, n, 120, NULL, &B, NULL, NULL, 0) == 150,
             "never above the upper bound");
    KT_CHECK(koe_opt_propose(s, n, 140, NULL, &B, NULL, NULL, 0) == 140,
             "inside the dead band: keep");
}

static void test_bounds_and_no_figures(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.100, 0.050); /* far too slow: the aim is below one character */
    KT_CHECK(koe_opt_propose(s, n, 16, NULL, &B, NULL, NULL, 0) == 12,
             "never below the lower bound");
    KT_CHECK(koe_opt_propose(s, 0, 32, NULL, &B, NULL, NULL, 0) == 32, "no figures: keep");
    koe_opt_sample empty[3] = {{.ttfa = 0.2, .first_synth = 0.1, .first_chars = 0},
                               {.ttfa = 0.2, .first_synth = 0, .first_chars = 10},
                               {.ttfa = 0.05, .first_synth = 0.1, .first_chars = 10}};
    KT_CHECK(koe_opt_propose(empty, 3, 32, NULL, &B, NULL, NULL, 0) == 32,
             "unusable figures: keep");
}

/* Streams that ran dry after their first segment: continuity before TTFA. */
static void test_starved_streams_raise(void) {
    koe_opt_sample s[10];
    char why[240];
    size_t n = fill(s, 10, 0.010, 0.020); /* TTFA alone would lower 32 -> 21 */
    for (size_t i = 0; i < n; i++) s[i].has_next = 1;
    s[3].starved = 1; /* 1 of 10: not more than 1 in 10, but no step down either */
    koe_opt_state st = {0};
    KT_CHECK(koe_opt_propose(s, n, 32, NULL, &B, &st, why, sizeof why) == 32, "one starved: keep");
    s[7].starved = 1; /* 2 of 10: up one step, whatever TTFA says */
    int next = koe_opt_propose(s, n, 32, NULL, &B, &st, why, sizeof why);
    KT_CHECK(next == 48, "32 -> %d", next);
    KT_CHECK(strstr(why, "2 of 10 streams ran dry") != NULL, "reason: %s", why);
    KT_CHECK(st.floor == 48 && st.floor_left == KOE_OPT_FLOOR_DECISIONS, "floor %d for %d",
             st.floor, st.floor_left);
    /* streams without a second segment say nothing about it */
    for (size_t i = 0; i < n; i++) s[i].has_next = 0;
    koe_opt_state st2 = {0};
    KT_CHECK(koe_opt_propose(s, n, 32, NULL, &B, &st2, NULL, 0) == 21, "no second segments: TTFA");
}

static void test_floor_holds_then_expires(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.010, 0.020); /* TTFA wants 13 */
    for (size_t i = 0; i < n; i++) s[i].has_next = 1;
    koe_opt_state st = {.floor = 48, .floor_left = 2};
    KT_CHECK(koe_opt_propose(s, n, 48, NULL, &B, &st, NULL, 0) == 48, "floor holds (1)");
    KT_CHECK(koe_opt_propose(s, n, 48, NULL, &B, &st, NULL, 0) == 48, "floor holds (2)");
    KT_CHECK(st.floor_left == 0, "floor used up");
    KT_CHECK(koe_opt_propose(s, n, 48, NULL, &B, &st, NULL, 0) == 32, "then TTFA again: 48 -> 32");
    /* already at the top: a starved stream cannot raise it further */
    s[0].starved = s[1].starved = 1;
    KT_CHECK(koe_opt_propose(s, n, 150, NULL, &B, &st, NULL, 0) == 150, "at the upper bound");
}

/* The segment ramp: down when the first segment's synthesis is too slow for a next segment that
 * much longer, back up when there is room. */
static void test_ramp(void) {
    koe_opt_bounds b = B;
    b.ramp_lo = 1.25;
    b.ramp_hi = 2;
    koe_opt_sample s[10];
    char why[240];
    size_t n = fill(s, 10, 0.010, 0.020);
    for (size_t i = 0; i < n; i++) {
        s[i].has_next = 1;
        s[i].first_audio = s[i].first_synth / 0.6; /* synthesis at 0.6 of the audio's length */
    }
    s[2].starved = s[5].starved = s[8].starved = 1;
    double ramp = 2;
    koe_opt_state st = {0};
    int next = koe_opt_propose(s, n, 32, &ramp, &b, &st, why, sizeof why);
    KT_CHECK(next == 32, "the first segment stays: %d", next);
    KT_CHECK(ramp > 1.333 && ramp < 1.334, "ramp 2 -> 0.8 / 0.6 = %.4f", ramp);
    KT_CHECK(strstr(why, "segment-ramp 2.00 -> 1.33") != NULL, "reason: %s", why);
    /* still starving with the ramp now in reach: the overhead, so the first segment goes up */
    next = koe_opt_propose(s, n, 32, &ramp, &b, &st, NULL, 0);
    KT_CHECK(ramp > 1.333 && ramp < 1.334 && next == 48, "then the first segment: %d (ramp %.4f)",
             next, ramp);
    /* synthesis at 0.9 of the audio: never below the bound */
    for (size_t i = 0; i < n; i++) s[i].first_audio = s[i].first_synth / 0.9;
    ramp = 2;
    koe_opt_propose(s, n, 32, &ramp, &b, NULL, NULL, 0);
    KT_CHECK(ramp == 1.25, "straight to its bound (0.8 / 0.9 is below it): %.4f", ramp);
    /* synthesis at 0.5: one step of 1.25 (0.8 / 0.5 = 1.6 is the same step) */
    for (size_t i = 0; i < n; i++) s[i].first_audio = s[i].first_synth / 0.5;
    ramp = 2;
    koe_opt_propose(s, n, 32, &ramp, &b, NULL, NULL, 0);
    KT_CHECK(ramp > 1.5999 && ramp < 1.6001, "2 -> 1.6: %.4f", ramp);
    for (size_t i = 0; i < n; i++) s[i].first_audio = s[i].first_synth / 0.9;
    ramp = 1.25;
    next = koe_opt_propose(s, n, 32, &ramp, &b, NULL, NULL, 0);
    KT_CHECK(ramp == 1.25 && next == 48, "at the bound, the first segment goes up: %d", next);
    /* a fast first segment (0.2 of its audio): the ramp is not the problem */
    for (size_t i = 0; i < n; i++) s[i].first_audio = s[i].first_synth / 0.2;
    ramp = 2;
    next = koe_opt_propose(s, n, 32, &ramp, &b, NULL, NULL, 0);
    KT_CHECK(ramp == 2 && next == 48, "fast: ramp %.2f stays, first %d up", ramp, next);
    /* no stream starved, fast, the length on target: the ramp recovers a step */
    for (size_t i = 0; i < n; i++) {
        s[i].starved = 0;
        s[i].first_audio = s[i].first_synth / 0.1;
    }
    ramp = 1.25;
    next = koe_opt_propose(s, n, 14, &ramp, &b, NULL, why, sizeof why);
    KT_CHECK(next == 14 && ramp > 1.5624 && ramp < 1.5626, "ramp back up to %.4f (%s)", ramp, why);
    ramp = 1.9;
    koe_opt_propose(s, n, 14, &ramp, &b, NULL, NULL, 0);
    KT_CHECK(ramp == 2, "never above ramp_hi: %.4f", ramp);
    /* without bounds (or NULL) it is never touched */
    ramp = 1.25;
    koe_opt_propose(s, n, 14, &ramp, &B, NULL, NULL, 0);
    KT_CHECK(ramp == 1.25, "untuned without bounds");
}

/* Waiting for a worker is not the first segment's fault: a queue adds to TTFA, not to the
 * overhead that the length is aimed with. */
static void test_queue_left_out(void) {
    koe_opt_sample s[10];
    size_t n = fill(s, 10, 0.010, 0.020); /* 13 characters meet 150 ms */
    for (size_t i = 0; i < n; i++) {
        s[i].queue_wait = 2.0; /* every request waited 2 s for a worker */
        s[i].ttfa += 2.0;
    }
    KT_CHECK(koe_opt_propose(s, n, 21, NULL, &B, NULL, NULL, 0) == 14,
             "aimed as if there were no queue");
    s[0].queue_wait = 99; /* a figure larger than its TTFA: the overhead is never negative */
    KT_CHECK(koe_opt_propose(s, n, 14, NULL, &B, NULL, NULL, 0) == 14, "kept");
}

/* n1 later segments on one core costing rho1 s per audio s, nk on k cores costing rhok */
static size_t fill_tasks(koe_opt_task *t, size_t n1, double rho1, size_t nk, int k, double rhok) {
    size_t n = 0;
    for (size_t i = 0; i < n1 + nk; i++) { /* interleaved, as they come */
        int one = (i % 2 == 0 && i / 2 < n1) || i / 2 >= nk;
        double audio = 1.0 + 0.25 * (double)(i % 5);
        t[n++] = (koe_opt_task){one ? 1 : k, (one ? rho1 : rhok) * audio, audio};
    }
    return n;
}

static void test_threads_by_efficiency(void) {
    koe_opt_task t[64];
    char why[240];
    /* two cores hardly faster (E = 0.2 / (2 x 0.18) = 0.56): one core each, even alone */
    size_t n = fill_tasks(t, 10, 0.20, 10, 2, 0.18);
    KT_EXPECT(koe_opt_threads(t, n, 0, 2, why, sizeof why) == 1);
    KT_CHECK(strstr(why, "efficiency 0.56") != NULL, "reason: %s", why);
    KT_CHECK(strstr(why, "later-threads 0 -> 1") != NULL, "reason: %s", why);
    KT_EXPECT(koe_opt_threads(t, n, 1, 2, why, sizeof why) == 1 && why[0] == 0);
    /* a spread set by hand comes back too */
    KT_EXPECT(koe_opt_threads(t, n, 2, 2, why, sizeof why) == 1);
    /* two cores nearly twice as fast (E = 0.2 / (2 x 0.11) = 0.91): the default policy (a lone
     * stream spread, several streams one core each), never a spread for every stream */
    n = fill_tasks(t, 10, 0.20, 10, 2, 0.11);
    KT_EXPECT(koe_opt_threads(t, n, 1, 2, why, sizeof why) == 0);
    KT_CHECK(strstr(why, "later-threads 1 -> 0") != NULL, "reason: %s", why);
    KT_EXPECT(koe_opt_threads(t, n, 0, 2, why, sizeof why) == 0 && why[0] == 0);
    KT_EXPECT(koe_opt_threads(t, n, 2, 2, why, sizeof why) == 0);
    /* in between (E = 0.2 / (2 x 0.13) = 0.77): keep whatever it is */
    n = fill_tasks(t, 10, 0.20, 10, 2, 0.13);
    for (int cur = 0; cur <= 2; cur++)
        KT_CHECK(koe_opt_threads(t, n, cur, 2, why, sizeof why) == cur, "cur %d", cur);
    /* four cores: k is the most frequent count above one (E = 0.4 / (4 x 0.16) = 0.63) */
    n = fill_tasks(t, 8, 0.40, 8, 4, 0.16);
    t[0].threads = 3; /* one on three cores does not make k 3 */
    KT_EXPECT(koe_opt_threads(t, n, 0, 4, why, sizeof why) == 1);
    KT_CHECK(strstr(why, "on 4 (") != NULL, "reason: %s", why);
}

static void test_threads_needs_figures(void) {
    koe_opt_task t[64];
    char why[240];
    /* too few on either side: keep */
    size_t n = fill_tasks(t, 10, 0.20, KOE_OPT_TASKS_MIN - 1, 2, 0.18);
    KT_EXPECT(koe_opt_threads(t, n, 0, 2, why, sizeof why) == 0 && why[0] == 0);
    n = fill_tasks(t, KOE_OPT_TASKS_MIN - 1, 0.20, 10, 2, 0.18);
    KT_EXPECT(koe_opt_threads(t, n, 0, 2, why, sizeof why) == 0 && why[0] == 0);
    /* one core: nothing to decide */
    n = fill_tasks(t, 10, 0.20, 10, 2, 0.18);
    KT_EXPECT(koe_opt_threads(t, n, 0, 1, why, sizeof why) == 0);
    /* at 1 with the multi-core figures aged out: back to the default to measure again */
    n = fill_tasks(t, 20, 0.20, 2, 2, 0.18);
    KT_EXPECT(koe_opt_threads(t, n, 1, 2, why, sizeof why) == 0);
    KT_CHECK(strstr(why, "1 -> 0") != NULL, "reason: %s", why);
    /* unusable figures (no audio, no time) do not count */
    n = fill_tasks(t, 10, 0.20, 10, 2, 0.18);
    for (size_t i = 0; i < n; i++)
        if (t[i].threads == 2) t[i].audio = 0;
    KT_EXPECT(koe_opt_threads(t, n, 0, 2, why, sizeof why) == 0);
}

int main(void) {
    kt_run("threads by parallel efficiency", test_threads_by_efficiency);
    kt_run("threads need figures", test_threads_needs_figures);
    kt_run("the queue is left out", test_queue_left_out);
    kt_run("the segment ramp", test_ramp);
    kt_run("starved streams raise it", test_starved_streams_raise);
    kt_run("the floor holds, then expires", test_floor_holds_then_expires);
    kt_run("lowers toward the target", test_lowers_toward_target);
    kt_run("raises when fast", test_raises_when_fast);
    kt_run("bounds, no figures", test_bounds_and_no_figures);
    return kt_finish();
}
