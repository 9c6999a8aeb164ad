/* Jobs, workers and the bounded byte queue between a worker and the HTTP response.
 *
 * Threads: the caller's (submit, read, cancel, release) and the workers'. One mutex guards the
 * queue and the counters; each job has its own mutex and two conditions (data for the reader,
 * space for the worker). A job is reference-counted: the submitter and the worker each hold it. */
#include "koe/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "koe/base.h"
#include "koe/text.h"
#include "koe/voice.h"
#include "pipeline/backend.h"

struct koe_job {
    pthread_mutex_t mu;
    pthread_cond_t can_read, can_write;
    int refs;
    volatile int cancel;
    int done, failed;
    koe_error error;
    /* ring of encoded bytes */
    unsigned char *ring;
    size_t cap, head, len;
    /* request */
    char *text;
    size_t text_len;
    char lang[16];
    float speed;
    koe_format format;
    int normalize;
    uint64_t seed;
    koe_voice *voice;
    /* timing */
    double t_submit;
    koe_job_times times;
    koe_job *next; /* queue link */
    /* The pipeline while the job waits in its queue, NULL once a worker took it; set and read
     * under both the pipeline's mutex and this job's (in that order). */
    koe_pipeline *waiting_in;
};

struct koe_pipeline {
    koe_pipeline_opts opts;
    koe_backend *backend;
    koe_voices *voices;
    pthread_mutex_t mu;
    pthread_cond_t has_work;
    koe_job *head, *tail;
    int queued, running, stopping;
    pthread_t *threads;
    koe_job **current; /* the job each worker runs (NULL when idle), so free can cancel it */
    int nthreads;
    koe_pipeline_stats stats;
    char model_path[4096];
};

static double now_s(void) {
    return koe_now_s();
}

/* ------------------------------------------------------------------ jobs */

static void job_unref(koe_job *j) {
    pthread_mutex_lock(&j->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->can_read);
    pthread_cond_destroy(&j->can_write);
    koe_voice_free(j->voice);
    free(j->ring);
    free(j->text);
    free(j);
}

void koe_job_release(koe_job *j) {
    if (!j) return;
    koe_job_cancel(j); /* a released job has no reader: stop its work */
    job_unref(j);
}

static void job_finish(koe_job *j, int failed, const koe_error *err);

/* Tells the job's worker and reader to stop (the caller may hold the pipeline's mutex). */
static void job_flag_cancel(koe_job *j) {
    pthread_mutex_lock(&j->mu);
    j->cancel = 1;
    pthread_cond_broadcast(&j->can_write);
    pthread_cond_broadcast(&j->can_read);
    pthread_mutex_unlock(&j->mu);
}

void koe_job_cancel(koe_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    koe_pipeline *p = j->waiting_in;
    pthread_mutex_unlock(&j->mu);
    int unlinked = 0;
    if (p) {
        /* Still waiting for a worker: leave the queue now, so the place is free at once. */
        pthread_mutex_lock(&p->mu);
        pthread_mutex_lock(&j->mu);
        if (j->waiting_in == p) {
            koe_job **link = &p->head, *prev = NULL;
            while (*link && *link != j) prev = *link, link = &(*link)->next;
            if (*link) {
                *link = j->next;
                if (p->tail == j) p->tail = prev;
                p->queued--;
                p->stats.jobs_cancelled++;
                unlinked = 1;
            }
            j->waiting_in = NULL;
        }
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_unlock(&p->mu);
    }
    job_flag_cancel(j);
    if (unlinked) {
        koe_error e = {0};
        koe_error_set(&e, KOE_ERR_CANCELLED, "cancelled while waiting for a worker");
        job_finish(j, 1, &e);
        job_unref(j); /* the reference the worker would have dropped */
    }
}

/* The encoder's write callback: into the ring, waiting for room (back-pressure). */
static int job_push(void *user, const void *data, size_t n) {
    koe_job *j = user;
    const unsigned char *p = data;
    pthread_mutex_lock(&j->mu);
    if (j->times.first_bytes == 0 && n > 0) j->times.first_bytes = now_s() - j->t_submit;
    while (n > 0) {
        while (j->len == j->cap && !j->cancel) pthread_cond_wait(&j->can_write, &j->mu);
        if (j->cancel) {
            pthread_mutex_unlock(&j->mu);
            return 1;
        }
        size_t tail = (j->head + j->len) % j->cap;
        size_t room = j->cap - j->len, run = j->cap - tail;
        size_t k = n < room ? n : room;
        if (k > run) k = run;
        memcpy(j->ring + tail, p, k);
        j->len += k;
        p += k;
        n -= k;
        pthread_cond_signal(&j->can_read);
    }
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void job_finish(koe_job *j, int failed, const koe_error *err) {
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    j->failed = failed;
    if (failed && err) j->error = *err;
    j->times.total = now_s() - j->t_submit;
    pthread_cond_broadcast(&j->can_read);
    pthread_mutex_unlock(&j->mu);
}

ssize_t koe_job_read(koe_job *j, void *buf, size_t cap, int timeout_ms, koe_error *err) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (j->len == 0 && !j->done && !j->cancel) {
        if (pthread_cond_timedwait(&j->can_read, &j->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&j->mu);
            return -2;
        }
    }
    ssize_t got;
    if (j->len > 0) {
        size_t run = j->cap - j->head, k = cap < j->len ? cap : j->len;
        if (k > run) k = run;
        memcpy(buf, j->ring + j->head, k);
        j->head = (j->head + k) % j->cap;
        j->len -= k;
        pthread_cond_signal(&j->can_write);
        got = (ssize_t)k;
    } else if (j->failed || (j->cancel && !j->done)) {
        if (err) *err = j->error;
        if (err && !err->msg[0]) koe_error_set(err, KOE_ERR_CANCELLED, "synthesis cancelled");
        got = -1;
    } else {
        got = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return got;
}

void koe_job_get_times(koe_job *j, koe_job_times *t) {
    pthread_mutex_lock(&j->mu);
    *t = j->times;
    pthread_mutex_unlock(&j->mu);
}

/* ------------------------------------------------------------------ work */

typedef struct pcm_ctx {
    koe_job *job;
    koe_audio_out *out;
    koe_error *err;
    double samples;
    int rate;
    int first;
} pcm_ctx;

static int on_samples(void *user, const float *pcm, size_t n) {
    pcm_ctx *c = user;
    if (c->job->cancel) return 1;
    c->samples += (double)n;
    if (koe_audio_out_write(c->out, pcm, n, c->err)) return 1;
    return c->job->cancel;
}

/* Silence between sentences, so that joins never run words together. */
static int add_pause(pcm_ctx *c, double seconds) {
    static const float zeros[512];
    size_t n = (size_t)(seconds * c->rate);
    while (n > 0) {
        size_t k = n < 512 ? n : 512;
        if (on_samples(c, zeros, k)) return 1;
        n -= k;
    }
    return 0;
}

static void run_job(koe_pipeline *p, koe_backend_worker *bw, koe_job *j) {
    koe_error err = {0};
    double t0 = now_s();
    pthread_mutex_lock(&j->mu);
    j->times.queue_wait = t0 - j->t_submit;
    pthread_mutex_unlock(&j->mu);
    koe_audio_out_opts ao = {0};
    ao.normalize = j->normalize;
    koe_audio_out *out = koe_audio_out_new(j->format, p->backend->sample_rate, KOE_AUDIO_RATE, &ao,
                                           job_push, j, &err);
    koe_text_opts to = koe_text_opts_default();
    to.lang = j->lang;
    if (p->opts.first_segment_max > 0) to.first_max = (size_t)p->opts.first_segment_max;
    koe_segments *segs = NULL;
    int rc = out ? koe_text_segment(j->text, j->text_len, &to, &segs, &err) : KOE_ERR_INTERNAL;
    pcm_ctx c = {.job = j, .out = out, .err = &err, .rate = p->backend->sample_rate};
    if (!rc) {
        pthread_mutex_lock(&j->mu);
        j->times.front_end = now_s() - j->t_submit;
        j->times.segments = (int)segs->count;
        pthread_mutex_unlock(&j->mu);
    }
    for (size_t i = 0; !rc && i < segs->count && !j->cancel; i++) {
        const koe_segment *s = &segs->items[i];
        if (!s->normalized_len) { /* nothing to say (e.g. only punctuation): done at once */
            pthread_mutex_lock(&j->mu);
            j->times.segments_done = (int)i + 1;
            pthread_mutex_unlock(&j->mu);
            continue;
        }
        koe_segment_job sj = {.normalized = s->normalized,
                              .len = s->normalized_len,
                              .lang = j->lang,
                              .speed = j->speed,
                              .voice = j->voice,
                              .seed = j->seed ? j->seed + i : 0};
        rc = p->backend->speak(bw, &sj, on_samples, &c, &j->cancel, &err);
        if (!rc) {
            pthread_mutex_lock(&j->mu);
            if (i == 0) j->times.first_synth = now_s() - j->t_submit;
            j->times.segments_done = (int)i + 1;
            pthread_mutex_unlock(&j->mu);
        }
        if (!rc && i + 1 < segs->count && add_pause(&c, s->sentence_end ? 0.12 : 0.05))
            rc = KOE_ERR_CANCELLED;
    }
    if (!rc && j->cancel) rc = KOE_ERR_CANCELLED;
    if (!rc) rc = koe_audio_out_finish(out, &err);
    if (rc == KOE_ERR_CANCELLED || j->cancel) {
        rc = KOE_ERR_CANCELLED;
        koe_error_set(&err, KOE_ERR_CANCELLED, "synthesis cancelled (client gone)");
    }
    koe_segments_free(segs);
    koe_audio_out_free(out);
    double synth = now_s() - t0;
    pthread_mutex_lock(&j->mu);
    j->times.audio_seconds = c.samples / (c.rate ? c.rate : 1);
    pthread_mutex_unlock(&j->mu);
    job_finish(j, rc != 0, &err);
    pthread_mutex_lock(&p->mu);
    p->running--;
    if (rc == 0)
        p->stats.jobs_done++;
    else if (rc == KOE_ERR_CANCELLED)
        p->stats.jobs_cancelled++;
    else
        p->stats.jobs_failed++;
    p->stats.audio_seconds += c.samples / (c.rate ? c.rate : 1);
    p->stats.synth_seconds += synth;
    pthread_mutex_unlock(&p->mu);
}

typedef struct worker_arg {
    koe_pipeline *p;
    int index;
} worker_arg;

static void *worker_main(void *arg) {
    koe_pipeline *p = ((worker_arg *)arg)->p;
    int index = ((worker_arg *)arg)->index;
    free(arg);
    koe_error err = {0};
    koe_backend_worker *bw = p->backend->worker_new(p->backend, p->opts.threads, &err);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping) pthread_cond_wait(&p->has_work, &p->mu);
        if (!p->head) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        koe_job *j = p->head;
        p->head = j->next;
        pthread_mutex_lock(&j->mu);
        j->waiting_in = NULL;
        pthread_mutex_unlock(&j->mu);
        if (!p->head) p->tail = NULL;
        p->queued--;
        p->running++;
        p->current[index] = j;
        pthread_mutex_unlock(&p->mu);
        if (!bw) {
            job_finish(j, 1, &err);
            pthread_mutex_lock(&p->mu);
            p->running--;
            p->stats.jobs_failed++;
            pthread_mutex_unlock(&p->mu);
        } else if (j->cancel) {
            koe_error e = {0};
            koe_error_set(&e, KOE_ERR_CANCELLED, "cancelled before it started");
            job_finish(j, 1, &e);
            pthread_mutex_lock(&p->mu);
            p->running--;
            p->stats.jobs_cancelled++;
            pthread_mutex_unlock(&p->mu);
        } else {
            run_job(p, bw, j);
        }
        pthread_mutex_lock(&p->mu);
        p->current[index] = NULL;
        pthread_mutex_unlock(&p->mu);
        job_unref(j);
    }
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
    if (p->opts.threads <= 0) p->opts.threads = 1;
    if (p->opts.max_queue <= 0) p->opts.max_queue = 4 * p->opts.workers;
    if (!p->opts.job_buffer) p->opts.job_buffer = 1 << 20;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->has_work, NULL);
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s/voices", p->opts.data_dir ? p->opts.data_dir : "data");
    koe_error verr = {0};
    p->voices = koe_voices_open(vdir, &verr); /* optional with espeak-ng */
    if (p->opts.model_path) {
        if (!p->voices) {
            koe_error_set(err, verr.code, "the Kokoro engine needs its voices: %s", verr.msg);
            koe_pipeline_free(p);
            return NULL;
        }
        p->backend = koe_backend_kokoro_new(p->opts.model_path, p->opts.config_path, err);
        snprintf(p->model_path, sizeof p->model_path, "%s", p->opts.model_path);
    } else {
        p->backend = koe_backend_espeak_new(err);
    }
    if (!p->backend) {
        koe_pipeline_free(p);
        return NULL;
    }
    p->threads = calloc((size_t)p->opts.workers, sizeof *p->threads);
    p->current = calloc((size_t)p->opts.workers, sizeof *p->current);
    for (int i = 0; p->threads && p->current && i < p->opts.workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        *wa = (worker_arg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker_main, wa)) {
            free(wa);
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        koe_error_set(err, KOE_ERR_INTERNAL, "cannot start worker threads");
        koe_pipeline_free(p);
        return NULL;
    }
    return p;
}

void koe_pipeline_free(koe_pipeline *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (koe_job *j = p->head; j; j = j->next) job_flag_cancel(j);
    /* A running job whose holder stopped reading would block its worker forever. */
    for (int i = 0; p->current && i < p->nthreads; i++)
        if (p->current[i]) job_flag_cancel(p->current[i]);
    pthread_cond_broadcast(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p->current);
    if (p->backend) p->backend->free(p->backend);
    koe_voices_close(p->voices);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->has_work);
    free(p);
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
    return p->nthreads;
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
    if (j) j->ring = malloc(p->opts.job_buffer);
    if (!j || !j->text || !j->ring) {
        if (j) free(j->text), free(j->ring);
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
    j->voice = voice;
    j->cap = p->opts.job_buffer;
    j->refs = 2; /* the caller and the worker */
    j->t_submit = now_s();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->can_read, NULL);
    pthread_cond_init(&j->can_write, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->queued >= p->opts.max_queue) {
        p->stats.jobs_rejected++;
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        j->refs = 1;
        job_unref(j);
        koe_error_set(err, KOE_ERR_LIMIT,
                      stopping ? "the server is shutting down" : "the work queue is full");
        return NULL;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    j->waiting_in = p; /* workers read it under p->mu, held here; the caller has no job yet */
    p->queued++;
    pthread_cond_signal(&p->has_work);
    pthread_mutex_unlock(&p->mu);
    return j;
}

void koe_pipeline_get_stats(koe_pipeline *p, koe_pipeline_stats *s) {
    pthread_mutex_lock(&p->mu);
    *s = p->stats;
    s->queued = p->queued;
    s->running = p->running;
    pthread_mutex_unlock(&p->mu);
}
