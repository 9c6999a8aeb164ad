/* The real-time optimizer's decision, kept apart from the pipeline's threads so that it can be
 * tested as a pure function: from recent requests' first-segment figures, the first-segment
 * length that should meet the TTFA target. */
#ifndef KOE_PIPELINE_OPTIMIZER_H
#define KOE_PIPELINE_OPTIMIZER_H

#include <stddef.h>

/* One request's first segment. */
typedef struct koe_opt_sample {
    double ttfa;        /* seconds from submit to its first encoded audio */
    double first_synth; /* seconds its first segment took on the worker */
    size_t first_chars; /* characters of that segment's normalized text */
} koe_opt_sample;

typedef struct koe_opt_bounds {
    int lo, hi;      /* first-segment length bounds, characters */
    double target;   /* TTFA target, seconds */
    double max_step; /* largest change per decision, as a factor (e.g. 1.5) */
    double deadband; /* no change under this relative difference (e.g. 0.1) */
} koe_opt_bounds;

/* The proposed first-segment length for the current one `cur`, or `cur` itself when the figures
 * say to keep it (or there are none). reason (may be NULL) receives a short explanation. The
 * model: ttfa = overhead + seconds_per_char x length, both medians over the samples. */
int koe_opt_propose(const koe_opt_sample *s, size_t n, int cur, const koe_opt_bounds *b,
                    char *reason, size_t reason_cap);

#endif
