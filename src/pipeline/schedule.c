#include "pipeline/schedule.h"

koe_task_kind koe_sched_kind(const koe_sched_entry *e, int lookahead) {
    if (e->finished) return KOE_TASK_NONE;
    if (!e->started) return KOE_TASK_FIRST;
    if (!e->segmented || e->next_sched >= e->nseg) return KOE_TASK_NONE;
    if (e->next_sched >= e->next_emit + (size_t)(lookahead > 0 ? lookahead : 1))
        return KOE_TASK_NONE;
    return KOE_TASK_LATER;
}

int koe_sched_before(const koe_sched_entry *a, koe_task_kind ka, const koe_sched_entry *b,
                     koe_task_kind kb) {
    if (ka != kb) return ka == KOE_TASK_FIRST;
    if (ka == KOE_TASK_FIRST) return a->t_submit < b->t_submit;
    double da = a->t_submit + a->sched_seconds, db = b->t_submit + b->sched_seconds;
    if (da != db) return da < db;
    return a->t_submit < b->t_submit;
}

int koe_sched_threads(koe_task_kind kind, int free_cores, int jobs_unfinished, int max_threads,
                      int later_threads) {
    int n = kind == KOE_TASK_FIRST ? free_cores
            : later_threads > 0    ? (later_threads < free_cores ? later_threads : free_cores)
            : jobs_unfinished <= 1 ? free_cores
                                   : 1;
    if (n > max_threads) n = max_threads;
    return n < 1 ? 1 : n;
}

int koe_sched_pick(const koe_sched_entry *const *e, int n, int lookahead, koe_task_kind *kind) {
    int best = -1;
    koe_task_kind bk = KOE_TASK_NONE;
    for (int i = 0; i < n; i++) {
        koe_task_kind k = koe_sched_kind(e[i], lookahead);
        if (k == KOE_TASK_NONE) continue;
        if (best < 0 || koe_sched_before(e[i], k, e[best], bk)) best = i, bk = k;
    }
    if (kind) *kind = bk;
    return best;
}

double koe_sched_lateness(double first_bytes, double audio_before, double ready_at) {
    if (first_bytes <= 0) return 0;
    double late = ready_at - (first_bytes + audio_before);
    return late > KOE_SCHED_LATE_SLACK ? late : 0;
}
