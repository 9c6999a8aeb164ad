/* The scheduling policy (src/pipeline/schedule.h) as a pure function: first tasks before later
 * segments, oldest first; later segments earliest deadline first; the lookahead bound; and a
 * simulated single worker serving a long job and a late short one. */
#include "harness.h"
#include "pipeline/schedule.h"

#include <string.h>

static void test_kinds(void) {
    koe_sched_entry e = {0};
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_FIRST);
    e.started = 1;
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_NONE); /* not yet cut into segments */
    e.segmented = 1, e.nseg = 5, e.next_sched = 1;
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_LATER);
    e.next_sched = 3; /* 3 ahead of a reader at 0 */
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_NONE);
    e.next_emit = 1;
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_LATER);
    e.next_sched = 5;
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_NONE); /* all scheduled */
    e.next_sched = 4, e.finished = 1;
    KT_EXPECT(koe_sched_kind(&e, 3) == KOE_TASK_NONE);
    koe_sched_entry f = {.finished = 1};
    KT_EXPECT(koe_sched_kind(&f, 3) == KOE_TASK_NONE);
}

static void test_order(void) {
    koe_sched_entry old_later = {.started = 1,
                                 .segmented = 1,
                                 .nseg = 9,
                                 .next_sched = 1,
                                 .t_submit = 0,
                                 .sched_seconds = 0.1};
    koe_sched_entry new_first = {.t_submit = 100};
    koe_sched_entry newer_first = {.t_submit = 101};
    KT_EXPECT(koe_sched_before(&new_first, KOE_TASK_FIRST, &old_later, KOE_TASK_LATER));
    KT_EXPECT(!koe_sched_before(&old_later, KOE_TASK_LATER, &new_first, KOE_TASK_FIRST));
    KT_EXPECT(koe_sched_before(&new_first, KOE_TASK_FIRST, &newer_first, KOE_TASK_FIRST));
    KT_EXPECT(!koe_sched_before(&newer_first, KOE_TASK_FIRST, &new_first, KOE_TASK_FIRST));
    /* deadlines: submitted at 0 with 10 s scheduled (runs dry at 10) vs at 5 with 2 s (at 7) */
    koe_sched_entry a = {.started = 1,
                         .segmented = 1,
                         .nseg = 9,
                         .next_sched = 2,
                         .t_submit = 0,
                         .sched_seconds = 10};
    koe_sched_entry b = {.started = 1,
                         .segmented = 1,
                         .nseg = 9,
                         .next_sched = 2,
                         .t_submit = 5,
                         .sched_seconds = 2};
    KT_EXPECT(koe_sched_before(&b, KOE_TASK_LATER, &a, KOE_TASK_LATER));
    KT_EXPECT(!koe_sched_before(&a, KOE_TASK_LATER, &b, KOE_TASK_LATER));
    b.sched_seconds = 5; /* a tie goes to the older */
    KT_EXPECT(koe_sched_before(&a, KOE_TASK_LATER, &b, KOE_TASK_LATER));
    const koe_sched_entry *arr[4] = {&a, &b, &old_later, &newer_first};
    koe_task_kind k;
    KT_EXPECT(koe_sched_pick(arr, 4, 3, &k) == 3 && k == KOE_TASK_FIRST);
    KT_EXPECT(koe_sched_pick(arr, 3, 3, &k) == 2 && k == KOE_TASK_LATER); /* deadline 0.1 */
    KT_EXPECT(koe_sched_pick(arr, 0, 3, &k) == -1 && k == KOE_TASK_NONE);
}

/* One worker; job A (12 segments of 2 s audio each, synthesized at 0.5 s apiece) from t = 0,
 * its reader taking segments as they come; job B (3 segments) arriving at t = 3.2. B's first
 * task must be the very next one the worker takes after B arrives; no job starves; each job's
 * segments are taken in order; A's stream never runs dry although B came in. */
static void test_simulated_worker(void) {
    koe_sched_entry job[2] = {{.t_submit = 0}, {.t_submit = 3.2}};
    const size_t nseg[2] = {12, 3};
    double done_at[2][16] = {{0}};
    size_t taken[2] = {0, 0};
    double t = 0;
    int b_first_at = -1, picks = 0, after_b = -1;
    for (; picks < 100; picks++) {
        const koe_sched_entry *arr[2];
        int idx[2], n = 0;
        for (int i = 0; i < 2; i++)
            if (job[i].t_submit <= t) arr[n] = &job[i], idx[n++] = i;
        koe_task_kind k;
        int w = koe_sched_pick(arr, n, 3, &k);
        if (w < 0) {
            if (t < 3.2) {
                t = 3.2; /* idle until B arrives */
                continue;
            }
            break;
        }
        int i = idx[w];
        if (after_b < 0 && t >= 3.2) after_b = i;
        if (k == KOE_TASK_FIRST) {
            if (i == 1) b_first_at = picks;
            job[i].started = job[i].segmented = 1;
            job[i].nseg = nseg[i];
        }
        size_t s = job[i].next_sched++;
        KT_EXPECT(s == taken[i]);
        taken[i]++;
        job[i].sched_seconds += 2.0;
        t += 0.5;
        done_at[i][s] = t;
        /* the reader takes every finished segment at once, in order */
        while (job[i].next_emit < job[i].next_sched) job[i].next_emit++;
        if (job[i].next_emit == job[i].nseg) job[i].finished = 1;
    }
    KT_CHECK(taken[0] == 12 && taken[1] == 3, "all taken: %zu, %zu", taken[0], taken[1]);
    KT_CHECK(after_b == 1 && b_first_at >= 0, "B's first task goes next (%d)", after_b);
    /* A plays from done_at[0][0]; segment s must be done before 2 s x s of playback */
    for (size_t s = 1; s < 12; s++)
        KT_CHECK(done_at[0][s] <= done_at[0][0] + 2.0 * (double)s + 1e-9,
                 "A's segment %zu ready at %.1f, needed at %.1f", s, done_at[0][s],
                 done_at[0][0] + 2.0 * (double)s);
}

static void test_threads(void) {
    /* default policy (later_threads 0) */
    /* alone: everything free goes to it, first task or not */
    KT_EXPECT(koe_sched_threads(KOE_TASK_FIRST, 2, 1, 2, 0) == 2);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 2, 1, 2, 0) == 2);
    /* a first task takes what is free even when others run; later segments then take one */
    KT_EXPECT(koe_sched_threads(KOE_TASK_FIRST, 3, 4, 8, 0) == 3);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 3, 4, 8, 0) == 1);
    /* never more than the most a task may use, never less than one */
    KT_EXPECT(koe_sched_threads(KOE_TASK_FIRST, 8, 1, 4, 0) == 4);
    KT_EXPECT(koe_sched_threads(KOE_TASK_FIRST, 8, 1, 1, 0) == 1);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 0, 3, 4, 0) == 1);
    /* the optimizer's later_threads: up to that many free cores for a later segment, whatever
     * the number of jobs; first tasks are not affected */
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 2, 4, 2, 2) == 2);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 1, 4, 2, 2) == 1);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 4, 3, 8, 3) == 3);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 4, 3, 2, 3) == 2);
    KT_EXPECT(koe_sched_threads(KOE_TASK_LATER, 2, 1, 2, 1) == 1); /* alone, but narrow */
    KT_EXPECT(koe_sched_threads(KOE_TASK_FIRST, 2, 4, 2, 1) == 2);
}

/* Lateness as a player starting at the first byte hears it. */
static void test_lateness(void) {
    /* first bytes at 0.2 s, 1.5 s of audio before the segment: due at 1.7 s */
    KT_CHECK(koe_sched_lateness(0.2, 1.5, 1.0) == 0, "ready well before: in time");
    KT_CHECK(koe_sched_lateness(0.2, 1.5, 1.704) == 0, "within the 5 ms slack: in time");
    double l = koe_sched_lateness(0.2, 1.5, 1.9);
    KT_CHECK(l > 0.1999 && l < 0.2001, "ready at 1.9 s: 200 ms late, got %.4f", l);
    KT_CHECK(koe_sched_lateness(0, 0, 5.0) == 0, "nothing said before it: never late");
}

int main(void) {
    kt_run("kinds", test_kinds);
    kt_run("order", test_order);
    kt_run("simulated worker", test_simulated_worker);
    kt_run("threads", test_threads);
    kt_run("lateness", test_lateness);
    return kt_finish();
}
