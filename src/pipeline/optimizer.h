/* The real-time optimizer's decision, kept apart from the pipeline's threads so that it can be
 * tested as a pure function: from recent requests' first-segment figures, the first-segment
 * length that should meet the TTFA target without the stream running dry after it. */
#ifndef KOE_PIPELINE_OPTIMIZER_H
#define KOE_PIPELINE_OPTIMIZER_H

#include <stddef.h>

/* One request's first segment. */
typedef struct koe_opt_sample {
    double ttfa;        /* seconds from submit to its first encoded audio */
    double first_synth; /* seconds its first segment took on the worker */
    double queue_wait;  /* seconds it waited for a worker (part of ttfa; no first-segment length
                           changes it, so the model leaves it out) */
    size_t first_chars; /* characters of that segment's normalized text */
    double first_audio; /* seconds of audio it gave (0 = unknown) */
    int has_next;       /* a second segment followed it */
    int starved;        /* that second segment was ready only after the first one's audio (and
                           pause) would have played out in real time from the first byte */
} koe_opt_sample;

typedef struct koe_opt_bounds {
    int lo, hi;              /* first-segment length bounds, characters */
    double target;           /* TTFA target, seconds */
    double max_step;         /* largest change per decision, as a factor (e.g. 1.5) */
    double deadband;         /* no change under this relative difference (e.g. 0.1) */
    double ramp_lo, ramp_hi; /* segment-ramp bounds when it is tuned (see koe_opt_propose) */
} koe_opt_bounds;

/* What the optimizer remembers between decisions (zero-initialized at start). */
typedef struct koe_opt_state {
    int floor;      /* no shorter first segment than this ... */
    int floor_left; /* ... for this many more decisions */
} koe_opt_state;

#define KOE_OPT_FLOOR_DECISIONS 8

/* The proposed first-segment length for the current one `cur`, or `cur` itself when the figures
 * say to keep it (or there are none). reason (may be NULL) receives a short explanation.
 *
 * Continuity first: when more than 1 in 10 of the streams with a second segment ran dry after
 * their first, the next segment could not be synthesized while the first played. With rho = the
 * first segment's synthesis time over its audio length (median), a second segment `ramp` times
 * longer costs about rho x ramp first-segment lengths; so when rho x ramp > 0.8 the ramp is too
 * steep for this machine and comes down (ramp given, by /1.25 at least, to 0.8 / rho at most,
 * not under ramp_lo); otherwise the per-segment overhead is what hurts, and the first segment
 * goes one step up, that length becoming a floor for the next KOE_OPT_FLOOR_DECISIONS decisions
 * (so that the TTFA target does not pull it straight back). Any starved stream at all forbids a
 * step down.
 *
 * Otherwise TTFA: the model ttfa = overhead + seconds_per_char x length, both medians over the
 * samples, aimed at the target, where overhead leaves out the wait for a worker (an overloaded
 * server's queue is no reason for shorter first segments, which would only add per-segment
 * cost); and when the length stays, no stream starved and rho x ramp x
 * 1.25 < 0.5, the ramp goes back up a step toward ramp_hi.
 *
 * ramp (may be NULL = not tuned) is read and updated in place; st (may be NULL = no memory) is
 * updated. */
int koe_opt_propose(const koe_opt_sample *s, size_t n, int cur, double *ramp,
                    const koe_opt_bounds *b, koe_opt_state *st, char *reason, size_t reason_cap);

/* One later segment's synthesis, for the threads decision. */
typedef struct koe_opt_task {
    int threads;  /* cores it ran on */
    double synth; /* seconds on its worker, time paused for first segments left out */
    double audio; /* seconds of audio it gave */
} koe_opt_task;

#define KOE_OPT_TASKS_MIN 6 /* later segments per thread count before their figures count */

/* How many cores a later segment may take (`cur`: 0 = the default policy, every free core when
 * its job is the only one, else one; 1 = one core each, also for a lone stream, whose next
 * segments then run side by side; n >= 2, set by hand, = up to n whatever the jobs), from how
 * well the engine uses several cores on this machine under this load: with rho_1 = the median
 * synthesis time over audio length of the later segments that ran on one core, and rho_k that of
 * those on k cores (k the most frequent count above 1), the parallel efficiency is
 * E = rho_1 / (k x rho_k): at E = 1 a segment on k cores costs the machine what k segments side
 * by side on one core each do, and is ready k times sooner. So:
 *   E <  0.70 -> 1: segments side by side give more audio per second than one spread over the
 *                cores (the engine scales badly here, e.g. memory-bound);
 *   E >= 0.85 -> 0: spreading a lone stream's segment costs little and makes it ready sooner;
 *   else keep. It never proposes n >= 2 (every later segment spread over the free cores even
 * when streams share the machine): measured here (docs/PERFORMANCE.md) that cost 4 listeners
 * 5-12 % of the audio per second and raised their TTFA p50 by 150-340 ms, first segments waiting
 * for cores held by a spread later one, whatever E said. Needs KOE_OPT_TASKS_MIN samples of both;
 * without them it keeps `cur`, except that at 1 (which gives no k-core figures), once fewer than
 * KOE_OPT_TASKS_MIN are left in the window, it goes back to 0 so that they are measured again.
 * Returns the proposal; reason (may be NULL) receives a short explanation when it differs. */
int koe_opt_threads(const koe_opt_task *t, size_t n, int cur, int cores, char *reason,
                    size_t reason_cap);

#endif
