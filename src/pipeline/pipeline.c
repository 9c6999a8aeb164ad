/* Jobs, segment scheduling, reordering, and the reader-side encoder.
 *
 * Locking: one mutex (the pipeline's) guards every job's scheduling state, the job list and the
 * counters; the segment work and the encoding run outside it. A job's audio slots are written
 * by the one worker that runs the segment while its state is RUNNING, and read by the reader
 * only once it is DONE. The reader's encoder and byte buffer belong to the reader's thread.
 *
 * Lifetimes: a job is reference-counted (its holder, plus the pipeline's list while it is
 * listed); a job stays listed until it is finished and no worker runs one of its segments. The
 * pipeline itself is reference-counted by its owner and every live job, so a job read after
 * koe_pipeline_free still has its mutex. */
#include "koe/pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "koe/base.h"
#include "koe/text.h"
#include "koe/voice.h"
#include "pipeline/backend.h"
#include "pipeline/optimizer.h"
#include "pipeline/schedule.h"

/* Speaking rate used to estimate a segment's length before it is synthesized (characters of
 * normalized text per second at speed 1); only orders deadlines, never affects output. */
#define CHARS_PER_SECOND 15.0

typedef enum { SEG_PENDING, SEG_RUNNING, SEG_DONE } seg_state;

typedef struct seg_slot {
    seg_state state;
    float *pcm; /* the segment's samples at the backend's rate */
    size_t n, cap;
    double seconds; /* estimated until DONE, then the real length (pause included) */
    double pause;   /* silence after it */
    double t_done;  /* when it was synthesized, seconds from the job's submit */
} seg_slot;

struct koe_job {
    koe_pipeline *p;
    pthread_cond_t can_read; /* with p->mu */
    int refs;                /* under p->mu */
    volatile int cancel;     /* polled by the backend without the lock */
    int started, done, failed, listed, counted;
    koe_error error;
    /* request */
    char *text;
    size_t text_len;
    char lang[16];
    float speed;
    koe_format format;
    int normalize;
    uint64_t seed;
    int realtime;
    koe_voice *voice;
    /* segments, filled by the worker that runs the first task */
    koe_segments *segs;
    seg_slot *slots;
    size_t nseg, next_sched, next_emit;
    int segmented, in_flight;
    int first_max;        /* the first-segment length it was given */
    double ramp;          /* and the segment ramp */
    double sched_seconds; /* audio of the segments before next_sched (estimated or real) */
    /* the reader's side (its thread only) */
    koe_audio_out *out;
    koe_buf bytes;
    size_t bytes_off, emit_pos;
    int emit_paused, finished;
    double samples_out;
    int sampled; /* its figures went to the optimizer */
    /* timing */
    double t_submit;
    koe_job_times times; /* under p->mu */
    koe_job *prev, *next;
};

struct koe_pipeline {
    koe_pipeline_opts opts;
    atomic_int refs; /* the owner + every live job */
    koe_backend *backend;
    koe_voices *voices;
    pthread_mutex_t mu;
    pthread_cond_t has_work;
    koe_job *head, *tail; /* unfinished jobs (and finished ones a worker still works on) */
    int unfinished, stopping;
    int budget, in_use; /* cores, and those the running tasks use */
    /* first tasks running on express workers; while any does, later segments pause at their
     * next kernel (yield_to_first) and no new one starts: the first segment has the cores */
    atomic_int express_running;
    pthread_cond_t resume; /* with mu: express_running fell to 0, or stopping */
    /* the optimizer (under mu) */
    int first_max; /* the first-segment length new jobs get */
    double ramp;   /* and the segment ramp */
    koe_opt_sample samples[64];
    size_t nsamples, new_samples;
    koe_opt_state opt_state;
    int later_threads;      /* the cores a later segment may take (0 = default policy) */
    koe_opt_task tasks[64]; /* the last later segments' synthesis, for the threads decision */
    size_t ntasks, new_tasks;
    koe_pipeline_decision decisions[16];
    size_t ndecisions;
    double t_start;
    pthread_t opt_thread;
    int opt_running;
    pthread_cond_t opt_wake;
    pthread_t *threads;
    int nthreads;
    koe_pipeline_stats stats;
    char model_path[4096];
};

static double now_s(void) {
    return koe_now_s();
}

/* ------------------------------------------------------------------ lifetimes */

static void pipeline_destroy(koe_pipeline *p) {
    if (p->backend) p->backend->free(p->backend);
    koe_voices_close(p->voices);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->has_work);
    pthread_cond_destroy(&p->opt_wake);
    pthread_cond_destroy(&p->resume);
    free(p);
}

static void pipeline_unref(koe_pipeline *p) {
    if (atomic_fetch_sub(&p->refs, 1) == 1) pipeline_destroy(p);
}

static void job_destroy(koe_job *j) {
    koe_pipeline *p = j->p;
    pthread_cond_destroy(&j->can_read);
    for (size_t i = 0; i < j->nseg; i++) free(j->slots[i].pcm);
    free(j->slots);
    koe_segments_free(j->segs);
    koe_audio_out_free(j->out);
    koe_buf_free(&j->bytes);
    koe_voice_free(j->voice);
    free(j->text);
    free(j);
    pipeline_unref(p);
}

/* Drops a reference under p->mu; returns 1 when the caller must job_destroy() it (after
 * unlocking). */
static int job_drop_locked(koe_job *j) {
    return --j->refs == 0;
}

static int job_finished(const koe_job *j) {
    return j->done || j->failed || j->cancel;
}

/* Under p->mu: a finished job that no worker touches leaves the list (and its reference). */
static int job_maybe_unlist(koe_pipeline *p, koe_job *j) {
    if (!j->listed || !job_finished(j) || j->in_flight > 0) return 0;
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
    j->listed = 0;
    p->unfinished--;
    return job_drop_locked(j);
}

/* Under p->mu: the job's one transition to finished is counted here. */
static void job_count_end(koe_pipeline *p, koe_job *j, koe_code outcome) {
    if (j->counted) return;
    j->counted = 1;
    if (j->started)
        p->stats.running--;
    else
        p->stats.queued--;
    if (outcome == KOE_OK)
        p->stats.jobs_done++;
    else if (outcome == KOE_ERR_CANCELLED)
        p->stats.jobs_cancelled++;
    else
        p->stats.jobs_failed++;
    for (size_t i = j->next_emit; i < j->next_sched; i++)
        if (j->slots[i].state == SEG_DONE) p->stats.segments_ready--;
    j->times.total = now_s() - j->t_submit;
    pthread_cond_broadcast(&j->can_read);
}

/* Under p->mu. */
static void job_fail_locked(koe_pipeline *p, koe_job *j, const koe_error *err) {
    if (job_finished(j)) return;
    j->failed = 1;
    if (err) j->error = *err;
    if (!j->error.msg[0]) koe_error_set(&j->error, KOE_ERR_INTERNAL, "synthesis failed");
    job_count_end(p, j, KOE_ERR_INTERNAL);
}

static void job_cancel_locked(koe_pipeline *p, koe_job *j) {
    if (job_finished(j)) return;
    job_count_end(p, j, KOE_ERR_CANCELLED);
    j->cancel = 1;
}

void koe_job_cancel(koe_job *j) {
    if (!j) return;
    koe_pipeline *p = j->p;
    pthread_mutex_lock(&p->mu);
    job_cancel_locked(p, j);
    int gone = job_maybe_unlist(p, j);
    pthread_mutex_unlock(&p->mu);
    if (gone) job_destroy(j);
}

void koe_job_release(koe_job *j) {
    if (!j) return;
    koe_pipeline *p = j->p;
    pthread_mutex_lock(&p->mu);
    job_cancel_locked(p, j); /* a released job has no reader: stop its work */
    int gone = job_maybe_unlist(p, j);
    gone |= job_drop_locked(j);
    pthread_mutex_unlock(&p->mu);
    if (gone) job_destroy(j);
}

void koe_job_get_times(koe_job *j, koe_job_times *t) {
    pthread_mutex_lock(&j->p->mu);
    *t = j->times;
    pthread_mutex_unlock(&j->p->mu);
}

/* ------------------------------------------------------------------ the reader's side */

/* Appends item to a window of at most cap items of `size` bytes (*n of them now), dropping the
 * oldest when full: the optimizer's figures and decisions are kept this way. */
static void window_push(void *items, size_t *n, size_t cap, size_t size, const void *item) {
    char *a = items;
    if (*n == cap) {
        memmove(a, a + size, (cap - 1) * size);
        (*n)--;
    }
    memcpy(a + *n * size, item, size);
    (*n)++;
}

/* Under p->mu: a request's first-segment figures for the optimizer, once: when its second
 * segment is reached (whether the stream ran dry there is then known), or at its first bytes
 * when it has no second. */
static void record_sample(koe_pipeline *p, koe_job *j, int starved) {
    if (j->sampled || !j->nseg || !j->segs->items[0].normalized_len) return;
    j->sampled = 1;
    koe_opt_sample s = {.ttfa = j->times.first_bytes,
                        .first_synth = j->times.first_synth - j->times.front_end,
                        .queue_wait = j->times.queue_wait,
                        .first_chars = j->segs->items[0].normalized_len,
                        .first_audio = (double)j->slots[0].n / j->p->backend->sample_rate,
                        .has_next = j->realtime && j->nseg > 1,
                        .starved = starved};
    window_push(p->samples, &p->nsamples, sizeof p->samples / sizeof p->samples[0], sizeof s, &s);
    p->new_samples++;
}

/* The encoder's output: into the reader's byte buffer (the reader's thread). */
static int bytes_push(void *user, const void *data, size_t n) {
    koe_job *j = user;
    return koe_buf_append(&j->bytes, data, n) ? 1 : 0;
}

static size_t bytes_take(koe_job *j, void *buf, size_t cap) {
    size_t k = j->bytes.len - j->bytes_off;
    if (k > cap) k = cap;
    memcpy(buf, j->bytes.data + j->bytes_off, k);
    j->bytes_off += k;
    if (j->bytes_off == j->bytes.len) j->bytes.len = j->bytes_off = 0;
    return k;
}

/* Encodes the next piece of the segment at next_emit (DONE, taken by the reader), about
 * job_buffer bytes of output at most; then its pause; then, after the last, the encoder's end.
 * Runs without the lock. Returns 0, or an error code with err set; *seg_over = 1 when the
 * segment (pause included) is fully encoded. */
static int encode_piece(koe_job *j, seg_slot *s, int last, size_t piece, int *seg_over,
                        koe_error *err) {
    static const float zeros[1024];
    *seg_over = 0;
    if (j->emit_pos < s->n) {
        size_t k = s->n - j->emit_pos;
        if (k > piece) k = piece;
        int rc = koe_audio_out_write(j->out, s->pcm + j->emit_pos, k, err);
        j->emit_pos += k;
        j->samples_out += (double)k;
        return rc;
    }
    if (!j->emit_paused) {
        j->emit_paused = 1;
        size_t n = last ? 0 : (size_t)(s->pause * j->p->backend->sample_rate);
        j->samples_out += (double)n;
        while (n > 0) {
            size_t k = n < 1024 ? n : 1024;
            int rc = koe_audio_out_write(j->out, zeros, k, err);
            if (rc) return rc;
            n -= k;
        }
    }
    *seg_over = 1;
    return last ? koe_audio_out_finish(j->out, err) : 0;
}

/* Under p->mu, as the reader starts segment i > 0: was it ready in time for a client playing
 * from the first byte (schedule.h)? */
static void note_lateness(koe_pipeline *p, koe_job *j, size_t i) {
    if (!j->realtime) {
        if (i == 1) record_sample(p, j, 0);
        return;
    }
    double late = koe_sched_lateness(j->times.first_bytes, j->samples_out / p->backend->sample_rate,
                                     j->slots[i].t_done);
    if (late > 0) {
        j->times.late_segments++;
        j->times.late_seconds += late;
        p->stats.late_segments++;
        p->stats.late_seconds += late;
    }
    if (i == 1) record_sample(p, j, late > 0);
}

ssize_t koe_job_read(koe_job *j, void *buf, size_t cap, int timeout_ms, koe_error *err) {
    koe_pipeline *p = j->p;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    /* pcm s16: 2 bytes a sample; other formats are smaller, so this bounds the piece */
    size_t piece = p->opts.job_buffer / 2;
    if (piece < 256) piece = 256;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (j->bytes_off < j->bytes.len) { /* encoded bytes come first, even after a cancel */
            size_t k = bytes_take(j, buf, cap);
            pthread_mutex_unlock(&p->mu);
            return (ssize_t)k;
        }
        if (j->failed || j->cancel) {
            if (err) *err = j->error;
            if (err && (!j->failed || !err->msg[0]))
                koe_error_set(err, KOE_ERR_CANCELLED, "synthesis cancelled");
            pthread_mutex_unlock(&p->mu);
            return -1;
        }
        if (j->done) {
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        int ready =
            j->segmented && (j->next_emit == j->nseg || j->slots[j->next_emit].state == SEG_DONE);
        if (ready) {
            size_t i = j->next_emit;
            int last = i + 1 >= j->nseg, seg_over = 1, rc = 0;
            seg_slot *s = i < j->nseg ? &j->slots[i] : NULL;
            if (s && i > 0 && j->emit_pos == 0 && !j->emit_paused) note_lateness(p, j, i);
            pthread_mutex_unlock(&p->mu);
            koe_error e = {0};
            if (s)
                rc = encode_piece(j, s, last, piece, &seg_over, &e);
            else
                rc = koe_audio_out_finish(j->out, &e); /* nothing to say at all */
            pthread_mutex_lock(&p->mu);
            if (job_finished(j)) continue; /* cancelled or failed meanwhile: reported above */
            if (rc) {
                job_fail_locked(p, j, &e);
                continue;
            }
            if (j->times.first_bytes == 0 && j->bytes.len > 0 && j->samples_out > 0) {
                j->times.first_bytes = now_s() - j->t_submit;
                if (j->nseg <= 1) record_sample(p, j, 0);
            }
            if (!seg_over) continue;
            if (s) {
                free(s->pcm);
                s->pcm = NULL;
                s->n = s->cap = 0;
                j->next_emit++;
                p->stats.segments_ready--;
                j->emit_pos = 0;
                j->emit_paused = 0;
                pthread_cond_broadcast(&p->has_work); /* the lookahead moved */
            }
            if (s == NULL || last) {
                j->done = 1;
                j->times.audio_seconds = j->samples_out / p->backend->sample_rate;
                if (!j->times.first_bytes) j->times.first_bytes = now_s() - j->t_submit;
                p->stats.audio_seconds += j->times.audio_seconds;
                job_count_end(p, j, KOE_OK);
                int gone = job_maybe_unlist(p, j);
                if (gone) { /* cannot be the last reference: the reader holds one */
                    pthread_mutex_unlock(&p->mu);
                    return 0;
                }
            }
            continue;
        }
        if (pthread_cond_timedwait(&j->can_read, &p->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            return -2;
        }
    }
}

/* ------------------------------------------------------------------ scheduling */

/* A task: the job's first (front end + segment 0) when seg < 0, else one later segment. */
typedef struct task {
    koe_job *job;
    long seg;
    int threads;
    int express; /* on an express worker: not charged to the core budget */
} task;

static koe_sched_entry entry_of(const koe_job *j) {
    return (koe_sched_entry){.started = j->started,
                             .finished = job_finished(j),
                             .segmented = j->segmented,
                             .nseg = j->nseg,
                             .next_sched = j->next_sched,
                             .next_emit = j->next_emit,
                             .t_submit = j->t_submit,
                             .sched_seconds = j->sched_seconds};
}

/* Under p->mu: the next task by the policy of schedule.h, marked as taken; or 0. An express
 * worker takes first tasks only, with every core whatever the budget (the later segments running
 * meanwhile pause); a regular worker takes a task only on free cores, and no later segment while
 * an express worker runs. */
static int pick_task(koe_pipeline *p, int express, task *t) {
    int free_cores = p->budget - p->in_use;
    if (!express && free_cores < 1) return 0;
    int hold_later = express || atomic_load(&p->express_running) > 0;
    /* requests still synthesizing: while there are max_active, no new one starts */
    int synthesizing = 0;
    for (koe_job *j = p->head; j; j = j->next)
        synthesizing += j->started && !job_finished(j) &&
                        (!j->segmented || j->next_sched < j->nseg || j->in_flight > 0);
    koe_job *best = NULL;
    koe_sched_entry be = {0};
    koe_task_kind bk = KOE_TASK_NONE;
    for (koe_job *j = p->head; j; j = j->next) {
        koe_sched_entry e = entry_of(j);
        koe_task_kind k = koe_sched_kind(&e, p->opts.lookahead);
        if (k == KOE_TASK_FIRST && synthesizing >= p->opts.max_active) continue;
        if (k == KOE_TASK_LATER && hold_later) continue;
        if (k != KOE_TASK_NONE && (!best || koe_sched_before(&e, k, &be, bk)))
            best = j, be = e, bk = k;
    }
    if (!best) return 0;
    best->in_flight++;
    p->stats.segments_running++;
    int threads = express ? p->opts.threads
                          : koe_sched_threads(bk, free_cores, p->unfinished, p->opts.threads,
                                              p->later_threads);
    if (express)
        atomic_fetch_add(&p->express_running, 1);
    else
        p->in_use += threads;
    if (bk == KOE_TASK_FIRST) {
        best->started = 1;
        best->first_max = p->first_max;
        best->ramp = p->ramp;
        p->stats.queued--;
        p->stats.running++;
        best->times.queue_wait = now_s() - best->t_submit;
        *t = (task){best, -1, threads, express};
        return 1;
    }
    size_t i = best->next_sched++;
    best->slots[i].state = SEG_RUNNING;
    best->sched_seconds += best->slots[i].seconds;
    *t = (task){best, (long)i, threads, 0};
    return 1;
}

typedef struct slot_sink {
    seg_slot *slot;
    volatile const int *cancel;
} slot_sink;

static int slot_append(void *user, const float *pcm, size_t n) {
    slot_sink *ss = user;
    seg_slot *s = ss->slot;
    if (*ss->cancel) return 1;
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 24000;
        while (cap < s->n + n) cap *= 2;
        float *np = realloc(s->pcm, cap * sizeof *np);
        if (!np) return 1;
        s->pcm = np;
        s->cap = cap;
    }
    memcpy(s->pcm + s->n, pcm, n * sizeof *pcm);
    s->n += n;
    return 0;
}

/* A short raised-cosine fade at both ends of a segment, so that joins never click whatever the
 * samples at the cut. */
static void fade_edges(float *x, size_t n, int rate) {
    size_t k = (size_t)rate / 250; /* 4 ms */
    if (k > n / 4) k = n / 4;
    for (size_t i = 0; i < k; i++) {
        float g = 0.5f - 0.5f * cosf(3.14159265f * (float)i / (float)k);
        x[i] *= g;
        x[n - 1 - i] *= g;
    }
}

/* Synthesizes segment i into its slot (no lock held); costs (may be NULL) gets where the time
 * went. */
static int run_segment(koe_pipeline *p, koe_backend_worker *bw, koe_job *j, size_t i,
                       koe_segment_costs *costs, koe_error *err) {
    const koe_segment *sg = &j->segs->items[i];
    if (!sg->normalized_len) return 0; /* nothing to say (e.g. only punctuation) */
    koe_segment_job sj = {.normalized = sg->normalized,
                          .len = sg->normalized_len,
                          .lang = j->lang,
                          .speed = j->speed,
                          .voice = j->voice,
                          .seed = j->seed ? j->seed + i : 0,
                          .costs = costs};
    slot_sink ss = {&j->slots[i], &j->cancel};
    int rc = p->backend->speak(bw, &sj, slot_append, &ss, &j->cancel, err);
    if (!rc) fade_edges(j->slots[i].pcm, j->slots[i].n, p->backend->sample_rate);
    return rc;
}

/* Does a segment's text end with a clause mark (else it was cut between two words)? */
static int ends_clause(const char *t, size_t n) {
    static const char *const marks[] = {",",
                                        ";",
                                        ":",
                                        ")",
                                        "-",
                                        "\xE2\x80\x94" /* em dash */,
                                        "\xE2\x80\x93" /* en dash */,
                                        "\xE2\x80\xA6" /* ... */,
                                        "\xE3\x80\x81" /* ideographic comma */,
                                        "\xEF\xBC\x8C" /* fullwidth comma */};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        size_t m = strlen(marks[i]);
        if (n >= m && !memcmp(t + n - m, marks[i], m)) return 1;
    }
    return 0;
}

/* The front end of a job (no lock held): its segments and their empty slots. */
static int run_front_end(koe_pipeline *p, koe_job *j, koe_error *err) {
    koe_text_opts to = koe_text_opts_default();
    to.lang = j->lang;
    to.first_max = (size_t)j->first_max;
    if (p->opts.first_segment_min >= 0) to.first_min = (size_t)p->opts.first_segment_min;
    to.ramp = j->ramp;
    koe_audio_out_opts ao = {0};
    ao.normalize = j->normalize;
    j->out = koe_audio_out_new(j->format, p->backend->sample_rate, KOE_AUDIO_RATE, &ao, bytes_push,
                               j, err);
    if (!j->out) return err && err->code ? err->code : KOE_ERR_INTERNAL;
    int rc = koe_text_segment(j->text, j->text_len, &to, &j->segs, err);
    if (rc) return rc;
    if (j->segs->count) {
        j->slots = calloc(j->segs->count, sizeof *j->slots);
        if (!j->slots) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < j->segs->count; i++) {
        const koe_segment *sg = &j->segs->items[i];
        seg_slot *s = &j->slots[i];
        /* pauses follow punctuation: a sentence end, a clause mark, or none where a long
         * stretch without either was cut between two words */
        s->pause = !sg->normalized_len                                     ? 0
                   : sg->sentence_end                                      ? 0.12
                   : ends_clause(j->text + sg->start, sg->end - sg->start) ? 0.05
                                                                           : 0;
        s->seconds = (double)sg->normalized_len / (CHARS_PER_SECOND * j->speed) + s->pause;
    }
    return 0;
}

/* Under p->mu: one later segment's figures for the threads decision. */
static void record_task(koe_pipeline *p, int threads, double synth, double audio) {
    koe_opt_task t = {threads, synth, audio};
    window_push(p->tasks, &p->ntasks, sizeof p->tasks / sizeof p->tasks[0], sizeof t, &t);
    p->new_tasks++;
}

/* paused: the seconds the worker's task has waited for first segments so far (its yield hook
 * adds to it), left out of the task's synthesis time. */
static void run_task(koe_pipeline *p, koe_backend_worker *bw, const task *t, koe_error *werr,
                     const double *paused) {
    koe_job *j = t->job;
    koe_error err = {0};
    double t0 = now_s();
    size_t i = 0;
    int rc = 0;
    if (bw && p->backend->set_threads) p->backend->set_threads(bw, t->threads);
    if (!bw) {
        err = *werr;
        rc = err.code ? err.code : KOE_ERR_INTERNAL;
    } else if (t->seg < 0) {
        rc = run_front_end(p, j, &err);
        pthread_mutex_lock(&p->mu);
        if (!rc) {
            j->times.front_end = now_s() - j->t_submit;
            j->times.segments = (int)j->segs->count;
            j->nseg = j->segs->count;
            j->segmented = 1;
            if (j->nseg) { /* segment 0 is this task's; the rest are for any worker */
                j->slots[0].state = SEG_RUNNING;
                j->next_sched = 1;
                j->sched_seconds = j->slots[0].seconds;
                pthread_cond_broadcast(&p->has_work);
            } else {
                pthread_cond_broadcast(&j->can_read); /* an empty text: the reader ends it */
            }
        }
        int go = !rc && j->nseg && !job_finished(j);
        pthread_mutex_unlock(&p->mu);
        koe_segment_costs costs = {0};
        double t_seg = now_s() - j->t_submit;
        if (go) rc = run_segment(p, bw, j, 0, &costs, &err);
        if (go && !rc && costs.text_seconds > 0) {
            pthread_mutex_lock(&p->mu);
            j->times.first_text = t_seg + costs.text_seconds;
            pthread_mutex_unlock(&p->mu);
        }
    } else {
        i = (size_t)t->seg;
        rc = run_segment(p, bw, j, i, NULL, &err);
    }
    pthread_mutex_lock(&p->mu);
    j->in_flight--;
    p->stats.segments_running--;
    if (t->express) {
        if (atomic_fetch_sub(&p->express_running, 1) == 1) pthread_cond_broadcast(&p->resume);
    } else {
        p->in_use -= t->threads;
    }
    pthread_cond_broadcast(&p->has_work); /* cores are free again */
    p->stats.synth_seconds += now_s() - t0;
    if (job_finished(j)) {
        /* cancelled or failed meanwhile: counted then; the samples are dropped */
    } else if (rc) {
        job_fail_locked(p, j, &err);
    } else if (j->segmented && j->nseg) {
        seg_slot *s = &j->slots[i];
        s->state = SEG_DONE;
        p->stats.segments_ready++;
        double real = (double)s->n / p->backend->sample_rate + s->pause;
        j->sched_seconds += real - s->seconds;
        s->seconds = real;
        s->t_done = now_s() - j->t_submit;
        if (i == 0)
            j->times.first_synth = s->t_done;
        else if (p->backend->set_threads && s->n)
            record_task(p, t->threads, now_s() - t0 - *paused,
                        (double)s->n / p->backend->sample_rate);
        j->times.segments_done++;
        pthread_cond_broadcast(&j->can_read);
    }
    int gone = job_maybe_unlist(p, j);
    pthread_mutex_unlock(&p->mu);
    if (gone) job_destroy(j);
}

/* ------------------------------------------------------------------ the optimizer */

#define OPT_MIN_NEW   8  /* requests between two decisions on the first segment */
#define OPT_MIN_TASKS 16 /* later segments between two decisions on threads */

/* Under p->mu: keeps a decision (the last 16) and logs it as one JSON line. */
static void add_decision(koe_pipeline *p, const koe_pipeline_decision *d, const char *what,
                         double from, double to) {
    window_push(p->decisions, &p->ndecisions, sizeof p->decisions / sizeof p->decisions[0],
                sizeof *d, d);
    if (p->opts.log) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"optimizer\":\"%s\",\"from\":%.4g,\"to\":%.4g,\"at_s\":%.1f,"
                 "\"reason\":\"%s\"}",
                 what, from, to, d->at, d->reason);
        p->opts.log(p->opts.log_user, line);
    }
}

static void *optimizer_main(void *arg) {
    koe_pipeline *p = arg;
    /* the ramp is tuned between 1.25 and what was configured (a ramp of 1 or less means whole
     * sentences after the first segment: not tuned) */
    /* 12 characters (two short words, most often) is as short as it goes by itself: a one-word
     * first segment is faster still (docs/PERFORMANCE.md) but its prosody is not measured here;
     * an operator who sets a shorter --first-segment-max keeps it as the floor. */
    const int shortest = p->opts.first_segment_max < 12 ? p->opts.first_segment_max : 12;
    const koe_opt_bounds b = {.lo = shortest,
                              .hi = 150,
                              .target = p->opts.ttfa_target,
                              .max_step = 1.5,
                              .deadband = 0.1,
                              .ramp_lo = 1.25,
                              .ramp_hi = p->opts.segment_ramp};
    /* threads matter only to a backend that can use several */
    const int tune_threads = p->backend->set_threads && p->opts.threads > 1;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ms = p->opts.optimize_period_ms;
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&p->opt_wake, &p->mu, &until);
        if (p->stopping) break;
        int look_len = p->new_samples >= OPT_MIN_NEW;
        int look_threads = tune_threads && p->new_tasks >= OPT_MIN_TASKS;
        if (!look_len && !look_threads) continue;
        /* the figures of the last requests only: older ones were cut at another length */
        size_t n = !look_len ? 0 : p->new_samples < p->nsamples ? p->new_samples : p->nsamples;
        koe_opt_sample s[64];
        memcpy(s, p->samples + p->nsamples - n, n * sizeof *s);
        size_t nt = look_threads ? p->ntasks : 0;
        koe_opt_task tasks[64];
        memcpy(tasks, p->tasks, nt * sizeof *tasks);
        int cur = p->first_max, lt_was = p->later_threads;
        double ramp_was = p->ramp, ramp = ramp_was;
        pthread_mutex_unlock(&p->mu);
        char reason[240] = "", treason[240] = "";
        koe_opt_state st = p->opt_state; /* only this thread writes it */
        int next = cur, lt = lt_was;
        if (look_len)
            next = koe_opt_propose(s, n, cur, p->opts.segment_ramp > 1.25 ? &ramp : NULL, &b, &st,
                                   reason, sizeof reason);
        if (look_threads)
            lt = koe_opt_threads(tasks, nt, lt_was, p->opts.threads, treason, sizeof treason);
        pthread_mutex_lock(&p->mu);
        if (look_len) {
            p->opt_state = st;
            p->new_samples = 0;
        }
        if (look_threads) p->new_tasks = 0;
        koe_pipeline_decision d = {.at = now_s() - p->t_start,
                                   .first_segment_max_from = cur,
                                   .first_segment_max_to = next,
                                   .segment_ramp_from = ramp_was,
                                   .segment_ramp_to = ramp,
                                   .later_threads_from = lt_was,
                                   .later_threads_to = lt_was};
        if (next != cur || ramp != ramp_was) {
            p->first_max = next;
            p->ramp = ramp;
            snprintf(d.reason, sizeof d.reason, "%s", reason);
            add_decision(p, &d, next != cur ? "first_segment_max" : "segment_ramp",
                         next != cur ? (double)cur : ramp_was, next != cur ? (double)next : ramp);
        }
        if (lt != lt_was) {
            p->later_threads = lt;
            d.first_segment_max_from = d.first_segment_max_to = next;
            d.segment_ramp_from = d.segment_ramp_to = ramp;
            d.later_threads_to = lt;
            snprintf(d.reason, sizeof d.reason, "%s", treason);
            add_decision(p, &d, "later_threads", lt_was, lt);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int koe_pipeline_get_decisions(koe_pipeline *p, koe_pipeline_decision *out, int max) {
    pthread_mutex_lock(&p->mu);
    int n = (int)p->ndecisions < max ? (int)p->ndecisions : max;
    if (n > 0) memcpy(out, p->decisions + p->ndecisions - n, (size_t)n * sizeof *out);
    pthread_mutex_unlock(&p->mu);
    return n < 0 ? 0 : n;
}

typedef struct worker_arg {
    koe_pipeline *p;
    int express;
    int running_later; /* the worker's own thread only */
    double paused;     /* seconds its current task waited in yield_to_first (own thread only) */
} worker_arg;

/* A regular worker's backend calls this between two kernels: while it runs a later segment and
 * an express worker runs a first one, it waits, leaving the cores to the first segment (time to
 * first audio under load). A few hundred checks per second of audio, one atomic load each. */
static void yield_to_first(void *user) {
    worker_arg *w = user;
    koe_pipeline *p = w->p;
    if (!w->running_later || atomic_load(&p->express_running) == 0) return;
    double t0 = now_s();
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->express_running) > 0 && !p->stopping)
        pthread_cond_wait(&p->resume, &p->mu);
    pthread_mutex_unlock(&p->mu);
    w->paused += now_s() - t0;
}

static void *worker_main(void *arg) {
    worker_arg *w = arg;
    koe_pipeline *p = w->p;
    koe_error err = {0};
    koe_backend_worker *bw = p->backend->worker_new(p->backend, p->opts.threads, &err);
    if (bw && !w->express && p->backend->set_yield) p->backend->set_yield(bw, yield_to_first, w);
    for (;;) {
        task t;
        pthread_mutex_lock(&p->mu);
        int got;
        while (!(got = pick_task(p, w->express, &t)) && !p->stopping)
            pthread_cond_wait(&p->has_work, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (!got) break;
        w->running_later = t.seg >= 0;
        w->paused = 0;
        run_task(p, bw, &t, &err, &w->paused);
    }
    free(w);
    if (bw) p->backend->worker_free(bw);
    return NULL;
}

/* ------------------------------------------------------------------ pipeline */

koe_pipeline *koe_pipeline_new(const koe_pipeline_opts *opts, koe_error *err) {
    koe_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (opts) p->opts = *opts;
    if (p->opts.workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->opts.workers = n > 0 ? (int)n : 1;
    }
    if (p->opts.workers > 64) p->opts.workers = 64;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (p->opts.threads <= 0) p->opts.threads = (int)cores;
    if (p->opts.threads > 64) p->opts.threads = 64;
    /* every worker can always run something, and a task never waits for more than it needs */
    p->budget = (int)cores > p->opts.workers ? (int)cores : p->opts.workers;
    if (p->opts.max_queue <= 0) p->opts.max_queue = 4 * p->opts.workers;
    if (p->opts.lookahead <= 0) p->opts.lookahead = 3;
    if (p->opts.max_active <= 0) p->opts.max_active = 2 * p->opts.workers;
    if (p->opts.express_workers == 0) p->opts.express_workers = 1;
    if (p->opts.express_workers < 0) p->opts.express_workers = 0;
    if (p->opts.express_workers > 8) p->opts.express_workers = 8;
    if (!p->opts.job_buffer) p->opts.job_buffer = 64 * 1024;
    if (p->opts.first_segment_max <= 0) p->opts.first_segment_max = 32;
    if (p->opts.segment_ramp == 0) p->opts.segment_ramp = 2.0;
    if (!(p->opts.ttfa_target > 0)) p->opts.ttfa_target = 0.15;
    if (p->opts.optimize_period_ms <= 0) p->opts.optimize_period_ms = 2000;
    if (p->opts.later_threads < 0) p->opts.later_threads = 0;
    if (p->opts.later_threads > p->opts.threads) p->opts.later_threads = p->opts.threads;
    p->first_max = p->opts.first_segment_max;
    p->ramp = p->opts.segment_ramp;
    p->later_threads = p->opts.later_threads;
    p->t_start = now_s();
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    pthread_cond_init(&p->opt_wake, NULL);
    pthread_cond_init(&p->resume, NULL);
    atomic_init(&p->express_running, 0);
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s/voices", p->opts.data_dir ? p->opts.data_dir : "data");
    koe_error verr = {0};
    p->voices = koe_voices_open(vdir, &verr);
    /* Missing packs are fine for espeak-ng; broken ones are an error for every backend, so that
     * a truncated download is never hidden behind the fallback voice. */
    if (!p->voices && (p->opts.model_path || verr.code != KOE_ERR_NOT_FOUND)) {
        koe_error_set(
            err, verr.code ? verr.code : KOE_ERR_NOT_FOUND, "%s%s",
            p->opts.model_path ? "the Kokoro engine needs its voices: " : "voices: ", verr.msg);
        pipeline_unref(p);
        return NULL;
    }
    if (p->opts.model_path) {
        p->backend =
            koe_backend_kokoro_new(p->opts.model_path, p->opts.config_path, p->opts.precision, err);
        snprintf(p->model_path, sizeof p->model_path, "%s", p->opts.model_path);
    } else {
        p->backend = koe_backend_espeak_new(err);
    }
    if (!p->backend) {
        pipeline_unref(p);
        return NULL;
    }
    int all = p->opts.workers + p->opts.express_workers;
    p->threads = calloc((size_t)all, sizeof *p->threads);
    for (int i = 0; p->threads && i < all; i++) {
        worker_arg *wa = calloc(1, sizeof *wa);
        if (!wa) break;
        wa->p = p;
        wa->express = i >= p->opts.workers;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa)) {
            free(wa);
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads < all) { /* every worker or none: a pipeline short of one could hang */
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_cond_broadcast(&p->has_work);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
        koe_error_set(err, KOE_ERR_INTERNAL, "cannot start worker threads");
        free(p->threads);
        pipeline_unref(p);
        return NULL;
    }
    if (p->opts.optimize) p->opt_running = !pthread_create(&p->opt_thread, NULL, optimizer_main, p);
    return p;
}

void koe_pipeline_free(koe_pipeline *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (koe_job *j = p->head; j; j = j->next) job_cancel_locked(p, j);
    pthread_cond_broadcast(&p->has_work);
    pthread_cond_broadcast(&p->opt_wake);
    pthread_cond_broadcast(&p->resume);
    pthread_mutex_unlock(&p->mu);
    if (p->opt_running) pthread_join(p->opt_thread, NULL);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    p->threads = NULL;
    /* No worker runs anything now: every listed job leaves the list. */
    pthread_mutex_lock(&p->mu);
    koe_job *dead = NULL;
    while (p->head) {
        koe_job *j = p->head;
        if (job_maybe_unlist(p, j)) j->next = dead, dead = j;
    }
    pthread_mutex_unlock(&p->mu);
    while (dead) {
        koe_job *n = dead->next;
        job_destroy(dead);
        dead = n;
    }
    pipeline_unref(p);
}

koe_backend_kind koe_pipeline_backend(const koe_pipeline *p) {
    return p->opts.model_path ? KOE_BACKEND_KOKORO : KOE_BACKEND_ESPEAK;
}
const char *koe_pipeline_backend_name(const koe_pipeline *p) {
    return p->backend->name;
}
const char *koe_pipeline_model_path(const koe_pipeline *p) {
    return p->opts.model_path ? p->model_path : NULL;
}
int koe_pipeline_workers(const koe_pipeline *p) {
    return p->opts.workers;
}
void koe_pipeline_get_opts(koe_pipeline *p, koe_pipeline_opts *o) {
    pthread_mutex_lock(&p->mu);
    *o = p->opts;
    o->first_segment_max = p->first_max;
    o->segment_ramp = p->ramp;
    o->later_threads = p->later_threads;
    pthread_mutex_unlock(&p->mu);
}
const char *koe_pipeline_precision(const koe_pipeline *p) {
    return p->backend->precision;
}
const struct koe_voices *koe_pipeline_voices(const koe_pipeline *p) {
    return p->voices;
}

koe_job *koe_pipeline_submit(koe_pipeline *p, const koe_speech_request *r, koe_error *err) {
    if (!r->text || !r->len) {
        koe_error_set(err, KOE_ERR_INVALID, "input is empty");
        return NULL;
    }
    if (!(r->speed >= 0.25f && r->speed <= 4.0f)) {
        koe_error_set(err, KOE_ERR_INVALID, "speed must be between 0.25 and 4.0");
        return NULL;
    }
    const char *voice_name = r->voice && *r->voice ? r->voice : "af_heart";
    koe_voice *voice = NULL;
    if (p->voices) {
        voice = koe_voice_get(p->voices, voice_name, err);
        if (!voice) return NULL;
    }
    const char *lang = r->lang && *r->lang ? r->lang : koe_text_lang_for_voice(voice_name, err);
    if (!lang || koe_text_lang_check(lang, err)) {
        koe_voice_free(voice);
        return NULL;
    }
    koe_job *j = calloc(1, sizeof *j);
    if (j) j->text = malloc(r->len + 1);
    if (!j || !j->text) {
        free(j);
        koe_voice_free(voice);
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(j->text, r->text, r->len);
    j->text[r->len] = 0;
    j->text_len = r->len;
    snprintf(j->lang, sizeof j->lang, "%s", lang);
    j->speed = r->speed;
    j->format = r->format;
    j->normalize = r->normalize;
    j->seed = r->seed;
    j->realtime = r->realtime != 0;
    j->voice = voice;
    j->p = p;
    j->refs = 2; /* the caller and the list */
    j->t_submit = now_s();
    pthread_cond_init(&j->can_read, NULL);
    pthread_mutex_lock(&p->mu);
    /* places are held by jobs not finished: a cancelled one frees its place at once, even while
     * a worker still returns from its task (an express worker may have started it already) */
    if (p->stopping || p->stats.queued + p->stats.running >= p->opts.workers + p->opts.max_queue) {
        p->stats.jobs_rejected++;
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        pthread_cond_destroy(&j->can_read);
        koe_voice_free(voice);
        free(j->text);
        free(j);
        koe_error_set(err, KOE_ERR_LIMIT,
                      stopping ? "the server is shutting down" : "the work queue is full");
        return NULL;
    }
    atomic_fetch_add(&p->refs, 1);
    j->prev = p->tail;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    j->listed = 1;
    p->unfinished++;
    p->stats.queued++;
    pthread_cond_signal(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    return j;
}

void koe_pipeline_get_stats(koe_pipeline *p, koe_pipeline_stats *s) {
    pthread_mutex_lock(&p->mu);
    *s = p->stats;
    pthread_mutex_unlock(&p->mu);
}
