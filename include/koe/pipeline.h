/* A request's life after the HTTP layer: text → segments → a pool of inference workers →
 * reordering → loudness → encoder → the reader (the HTTP response).
 *
 * A koe_pipeline owns the backend and a fixed pool of worker threads, each with its own
 * inference context over the one shared model. Work is scheduled segment by segment:
 *  - a job's first task (front end + its short first segment) goes before any other job's
 *    later segments, so time to first audio stays low when the server is busy;
 *  - later segments go earliest-deadline-first (the moment each stream's buffered audio would
 *    run out), several segments of one job may run at once on different workers;
 *  - a job's segments are synthesized at most `lookahead` ahead of what its reader has taken,
 *    so memory per stream is bounded and a slow reader holds back only its own job;
 *  - finished segments are put back in order and encoded in the reader's thread, in pieces of
 *    at most about `job_buffer` bytes, so workers never wait on a socket.
 * A cancelled job (client gone) stops at once: queued segments are dropped, running ones stop
 * at the backend's next check. Every job records a TTFA breakdown. */
#ifndef KOE_PIPELINE_H
#define KOE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "koe/audio.h"
#include "koe/error.h"

typedef struct koe_pipeline koe_pipeline;
typedef struct koe_job koe_job;

typedef enum { KOE_BACKEND_ESPEAK, KOE_BACKEND_KOKORO } koe_backend_kind;

typedef struct koe_pipeline_opts {
    int workers;            /* inference workers; 0 = the number of cores */
    int threads;            /* most threads one segment may use; 0 = the number of cores. The
                               cores are a budget: a task starts only on a free core and takes
                               every free one (up to this) when it is a first segment or its job
                               is the only one, else one; so one listener's first segment gets
                               the whole machine and many listeners share it */
    int max_queue;          /* jobs beyond `workers` unfinished ones before submit refuses with
                               KOE_ERR_LIMIT; 0 = 4 x workers */
    int lookahead;          /* segments per job synthesized ahead of its reader; 0 = 3 */
    int express_workers;    /* workers that run only first tasks, with every core: while one
                               does, the later segments running elsewhere pause at their next
                               kernel, so a new request's first audio does not wait for them;
                               0 = 1, < 0 = none */
    int max_active;         /* requests synthesizing at once (the rest wait for their first
                               task, so that admitted streams keep up); 0 = 2 x workers */
    size_t job_buffer;      /* encoded bytes the reader prepares at a time (about); 0 = 64 KiB */
    const char *data_dir;   /* voices in <data_dir>/voices; NULL = "data" */
    const char *model_path; /* Kokoro weights; NULL = espeak-ng */
    const char *config_path;
    int precision;         /* a koe_precision (koe/model.h) for Kokoro; 0 = auto */
    int first_segment_max; /* characters; 0 = 32 (time to first audio grows with it) */
    int first_segment_min; /* the first clause end after this many characters ends it; 0 = at
                              the first clause end; < 0 = the front end's default */
    double segment_ramp;   /* segment k at most first_segment_max x ramp^k characters, so that
                              each is ready before the audio before it has played; 0 = 2,
                              <= 1 = no ramp (whole sentences after the first segment) */
    int later_threads;     /* most cores a later segment may take: 0 = all free ones when
                              its job is the only one, else one; n = up to n whatever the
                              jobs. The optimizer sets 1 or 0 by the parallel efficiency it
                              measures on later segments (see pipeline/optimizer.h) */
    /* The real-time optimizer: a background thread that retunes first_segment_max (between 12,
     * or the configured one when shorter, and 150 characters) and segment_ramp (between 1.25
     * and the configured ramp) from recent requests' first-segment figures so that streams do
     * not run dry after their first segment and TTFA meets ttfa_target, and later_threads from
     * later segments' figures; it never blocks a request. Every decision is kept
     * (koe_pipeline_get_decisions) and passed to log. */
    int optimize;           /* non-zero: on */
    double ttfa_target;     /* seconds; 0 = 0.15 */
    int optimize_period_ms; /* how often it looks; 0 = 2000 */
    void (*log)(void *user, const char *json_line);
    void *log_user;
} koe_pipeline_opts;

koe_pipeline *koe_pipeline_new(const koe_pipeline_opts *opts, koe_error *err);
/* Cancels every job not yet finished (queued or running: their readers then get -1,
 * "cancelled"), joins the workers, frees. Jobs still held by callers stay valid until released.
 * Read a job to its end before freeing to keep its audio. */
void koe_pipeline_free(koe_pipeline *p);

koe_backend_kind koe_pipeline_backend(const koe_pipeline *p);
const char *koe_pipeline_backend_name(const koe_pipeline *p); /* "kokoro" or "espeak-ng" */
const char *koe_pipeline_model_path(const koe_pipeline *p);   /* NULL with espeak-ng */
int koe_pipeline_workers(const koe_pipeline *p); /* regular workers (express ones not counted) */
/* The options in effect (defaults filled in; first_segment_max as the optimizer set it). */
void koe_pipeline_get_opts(koe_pipeline *p, koe_pipeline_opts *o);

typedef struct koe_pipeline_decision {
    double at; /* seconds since the pipeline started */
    int first_segment_max_from, first_segment_max_to;
    double segment_ramp_from, segment_ramp_to; /* equal when only the length changed */
    int later_threads_from, later_threads_to;  /* equal when the threads did not change */
    char reason[240];
} koe_pipeline_decision;
/* The optimizer's latest decisions (at most 16 kept), oldest first; returns how many. */
int koe_pipeline_get_decisions(koe_pipeline *p, koe_pipeline_decision *out, int max);
/* The engine's numeric precision ("fp32", "bf16", "int8"), NULL with espeak-ng. */
const char *koe_pipeline_precision(const koe_pipeline *p);
/* The voice list (NULL when the voice packs are missing: espeak-ng then speaks every name). */
const struct koe_voices *koe_pipeline_voices(const koe_pipeline *p);

typedef struct koe_speech_request {
    const char *text;
    size_t len;
    const char *voice; /* a Kokoro voice or blend */
    const char *lang;  /* NULL = from the voice's first letter */
    float speed;       /* 0.25 .. 4 */
    koe_format format;
    int normalize; /* loudness normalization (-16 LUFS) */
    uint64_t seed; /* Kokoro's noise; 0 = random */
    int realtime;  /* the client plays the audio as it arrives (a stream): only then is a late
                      segment an underrun, counted in late_segments and seen by the optimizer */
} koe_speech_request;

/* Validates the request (voice, language, text) and queues it. KOE_ERR_INVALID /
 * KOE_ERR_NOT_FOUND / KOE_ERR_UNSUPPORTED with a message for bad requests; KOE_ERR_LIMIT when
 * the queue is full. The returned job is held by the caller: koe_job_release() it. */
koe_job *koe_pipeline_submit(koe_pipeline *p, const koe_speech_request *r, koe_error *err);

/* Encoded bytes: waits up to timeout_ms for some. Returns > 0 bytes, 0 at the complete end,
 * -1 when the job failed (message in err), -2 on timeout (nothing yet; try again). The
 * encoding happens here, in the reader's thread; one reader per job at a time. */
ssize_t koe_job_read(koe_job *j, void *buf, size_t cap, int timeout_ms, koe_error *err);
/* Stops the job: a running one at its next check (between segments and inside the backend), a
 * queued one at once (it leaves the queue, freeing its place). Its reader then gets -1 with
 * KOE_ERR_CANCELLED once the bytes already buffered are read. Must not race koe_pipeline_free. */
void koe_job_cancel(koe_job *j);
/* Drops the caller's hold; a job not yet finished is cancelled first. */
void koe_job_release(koe_job *j);

/* Per-job TTFA breakdown (seconds from submit), filled as the job runs. */
typedef struct koe_job_times {
    double queue_wait;  /* until a worker took the job's first task */
    double front_end;   /* until its text was cut into segments */
    double first_text;  /* until its first segment's text side (phonemes, PL-BERT, predictor,
                           text encoder) was done; 0 when the backend does not say */
    double first_synth; /* until its first segment was synthesized */
    double first_bytes; /* until the first audio was encoded for the reader */
    double total;       /* until the last byte was encoded (0 while running) */
    double audio_seconds;
    int segments;        /* the front end's count (0 until it has cut the text) */
    int segments_done;   /* segments synthesized and handed to the encoder so far */
    int late_segments;   /* segments ready only after the audio before them would have played
                            out for a client playing in real time from the first byte (each is an
                            underrun such a client hears) */
    double late_seconds; /* the sum of those delays */
} koe_job_times;
void koe_job_get_times(koe_job *j, koe_job_times *t);

/* Counters for /metrics. */
typedef struct koe_pipeline_stats {
    int queued;  /* jobs no worker has started */
    int running; /* jobs started and not finished (synthesizing or being read) */
    int segments_running, segments_ready; /* segments on a worker / synthesized, not yet read */
    uint64_t jobs_done, jobs_failed, jobs_cancelled, jobs_rejected;
    double audio_seconds, synth_seconds;
    uint64_t late_segments; /* over all jobs, as in koe_job_times */
    double late_seconds;
} koe_pipeline_stats;
void koe_pipeline_get_stats(koe_pipeline *p, koe_pipeline_stats *s);

#endif
