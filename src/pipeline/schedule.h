/* The pipeline's scheduling policy, kept apart from its threads so that it can be tested as a
 * pure function: which job's task a free worker takes next. */
#ifndef KOE_PIPELINE_SCHEDULE_H
#define KOE_PIPELINE_SCHEDULE_H

#include <stddef.h>

/* What the policy needs to know of one job. */
typedef struct koe_sched_entry {
    int started;   /* a worker took its first task */
    int finished;  /* done, failed or cancelled */
    int segmented; /* its segments are known */
    size_t nseg, next_sched, next_emit;
    double t_submit;      /* seconds, any common clock */
    double sched_seconds; /* audio of the segments before next_sched (real or estimated) */
} koe_sched_entry;

typedef enum { KOE_TASK_NONE = 0, KOE_TASK_FIRST = 1, KOE_TASK_LATER = 2 } koe_task_kind;

/* The task this job offers now: its first (front end + first segment) until started; later a
 * segment, while fewer than `lookahead` are synthesized or running ahead of its reader. */
koe_task_kind koe_sched_kind(const koe_sched_entry *e, int lookahead);

/* 1 when a's task goes before b's: every first task before any later segment (time to first
 * audio), first tasks oldest first, later segments earliest deadline first (the moment that
 * stream's audio runs out: submit time + audio already scheduled), ties to the older job. */
int koe_sched_before(const koe_sched_entry *a, koe_task_kind ka, const koe_sched_entry *b,
                     koe_task_kind kb);

/* Threads for a task about to start with free_cores (>= 1) of the budget free: all of them (up
 * to max_threads) for a first task. For a later segment, with later_threads 0 (the default):
 * all of them when its job is the only one unfinished, so that one listener gets the whole
 * machine, else one, so that many listeners share it; with later_threads n >= 1 (the
 * optimizer's, from measured parallel efficiency): up to n of them whatever the jobs. */
int koe_sched_threads(koe_task_kind kind, int free_cores, int jobs_unfinished, int max_threads,
                      int later_threads);

/* A client that plays in real time from the first byte has heard audio_before seconds (pauses
 * included) by first_bytes + audio_before; a segment ready later than that, by more than
 * KOE_SCHED_LATE_SLACK, left its buffer dry. Returns that delay in seconds, or 0 when it was in
 * time (or nothing was said before it: first_bytes <= 0). All times in seconds from submit. */
#define KOE_SCHED_LATE_SLACK 0.005
double koe_sched_lateness(double first_bytes, double audio_before, double ready_at);

/* Over an array: the index of the job whose task goes next, or -1 (kind in *kind). */
int koe_sched_pick(const koe_sched_entry *const *e, int n, int lookahead, koe_task_kind *kind);

#endif
