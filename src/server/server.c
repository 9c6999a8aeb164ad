/* The HTTP layer: routing, strict request parsing, OpenAI-shaped errors, streaming responses,
 * TTFA measurement, metrics and status.
 *
 * libmicrohttpd runs one thread per connection, so a streaming response may block in its reader
 * while the pipeline produces audio; the pipeline's bounded queue keeps that honest. TTFA is
 * measured here, from the request's arrival to the first audio byte handed to libmicrohttpd. */
#include "koe/server.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "koe/base.h"
#include "koe/text.h"
#include "koe/voice.h"
#include "koe/web_assets.h"
#include "server/audio_cache.h"

#define TTFA_WINDOW 1000
static const double ttfa_buckets[] = {0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5};
#define NBUCKETS (sizeof ttfa_buckets / sizeof ttfa_buckets[0])

/* The marks of a request's way to its first audio byte, in order (seconds since arrival). */
enum {
    ST_PARSED,
    ST_WORKER,
    ST_FRONT_END,
    ST_TEXT_SIDE,
    ST_FIRST_SEGMENT,
    ST_FIRST_ENCODED,
    NSTAGES
};
static const char *const stage_names[NSTAGES] = {
    "parsed",         "worker_started",     "front_end_done",
    "text_side_done", "first_segment_done", "first_bytes_encoded"};

typedef struct status_count {
    int code;
    uint64_t n;
} status_count;

struct koe_server {
    koe_server_opts o;
    koe_pipeline *pipe;
    struct MHD_Daemon *d;
    int port;
    volatile int ready;
    pthread_mutex_t mu;
    uint64_t next_id;
    int active_streams, in_flight;
    /* Speech has churned memory since the last malloc_trim: trim once nothing is in flight. */
    int trim_pending;
    status_count statuses[32];
    uint64_t requests;
    uint64_t ttfa_bucket[NBUCKETS + 1];
    double ttfa_sum;
    uint64_t ttfa_count;
    double ttfa_ring[TTFA_WINDOW];
    /* Where each request stood on its way to the first byte (ms marks since arrival, -1 when
     * not reached), in step with ttfa_ring: the TTFA breakdown of /status. */
    double stage_ring[NSTAGES][TTFA_WINDOW];
    size_t ttfa_n, ttfa_pos;
    uint64_t speech_ok, speech_total;
    double infer_ms_sum;
    uint64_t client_gone, client_timeouts;
    audio_cache *acache;
};

typedef struct request {
    koe_server *s;
    uint64_t id;
    double t_arrival, t_first, t_submit;
    koe_buf body;
    int too_large, answered;
    int status;
    int is_speech;
    koe_job *job;
    struct MHD_Connection *conn;
    size_t bytes_out;
    char voice[96], format[8];
    char method[8], path[96];
    char error[600]; /* the message of an error answer, for the log */
    size_t chars;
    int stream;
    int client_closed;    /* seen closed while waiting for audio */
    int failed;           /* synthesis failed mid-stream */
    int job_complete;     /* the job's reader saw the complete end (every byte of the answer) */
    int idle_timeout_off; /* the stream waits on the pipeline: its idle timeout is paused */
    int counted;          /* counted in active_streams */
    /* A streamed answer's first bytes, read before the response is queued (so that a job failing
     * before any audio gets an error status); the reader hands them out first. */
    char *first;
    size_t first_len, first_pos;
    /* The audio cache: this request's key; the answer replayed on a hit; on a miss, the bytes
     * collected for insertion (reserved from the cache's collection budget). */
    koe_buf key;
    const audio_blob *hit;
    size_t hit_pos;
    koe_buf collect;
    int collecting;
} request;

/* ------------------------------------------------------------------ small helpers */

static void count_status(koe_server *s, int code) {
    pthread_mutex_lock(&s->mu);
    s->requests++;
    size_t i = 0;
    while (i < 32 && s->statuses[i].code && s->statuses[i].code != code) i++;
    if (i < 32) s->statuses[i].code = code, s->statuses[i].n++;
    pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result send_bytes(request *r, struct MHD_Connection *c, int code, const char *type,
                                  const void *data, size_t len, const char *allow) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)r->id);
    MHD_add_response_header(resp, "X-Request-Id", id);
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    if (code == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (code == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->status = code;
    r->answered = 1;
    return ret;
}

static enum MHD_Result send_json(request *r, struct MHD_Connection *c, int code, cJSON *j) {
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return MHD_NO;
    enum MHD_Result ret = send_bytes(r, c, code, "application/json", text, strlen(text), NULL);
    free(text);
    return ret;
}

/* OpenAI's error shape: {"error":{"message","type","param","code"}}. */
static enum MHD_Result send_error(request *r, struct MHD_Connection *c, int code, const char *param,
                                  const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result send_error(request *r, struct MHD_Connection *c, int code, const char *param,
                                  const char *allow, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->error, sizeof r->error, "%s", msg);
    const char *type = code == 401   ? "authentication_error"
                       : code == 404 ? "not_found_error"
                       : code == 503 ? "server_overloaded"
                       : code >= 500 ? "server_error"
                                     : "invalid_request_error";
    const char *ecode = code == 413   ? "request_too_large"
                        : code == 405 ? "method_not_allowed"
                        : code == 404 ? "not_found"
                        : code == 503 ? "queue_full"
                        : code == 401 ? "invalid_api_key"
                                      : (param ? "invalid_value" : "invalid_request");
    cJSON *e = cJSON_CreateObject(), *root = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", ecode);
    cJSON_AddItemToObject(root, "error", e);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result ret = send_bytes(r, c, code, "application/json", text, strlen(text), allow);
    free(text);
    return ret;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50/p95/p99 in ms of the n values of v that are >= 0 (sorted in place); returns their count. */
static size_t percentiles_ms(double *v, size_t n, double *p50, double *p95, double *p99) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= 0) v[m++] = v[i];
    *p50 = *p95 = *p99 = 0;
    if (!m) return 0;
    qsort(v, m, sizeof *v, cmp_double);
    *p50 = v[(size_t)(0.50 * (double)(m - 1) + 0.5)] * 1e3;
    *p95 = v[(size_t)(0.95 * (double)(m - 1) + 0.5)] * 1e3;
    *p99 = v[(size_t)(0.99 * (double)(m - 1) + 0.5)] * 1e3;
    return m;
}

/* p50/p95/p99 of the TTFA window, in ms; returns the sample count. */
static size_t ttfa_percentiles(koe_server *s, double *p50, double *p95, double *p99, double *miss) {
    double v[TTFA_WINDOW];
    pthread_mutex_lock(&s->mu);
    size_t n = s->ttfa_n;
    memcpy(v, s->ttfa_ring, n * sizeof *v);
    pthread_mutex_unlock(&s->mu);
    *p50 = *p95 = *p99 = *miss = 0;
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_double);
    *p50 = v[(size_t)(0.50 * (double)(n - 1) + 0.5)] * 1e3;
    *p95 = v[(size_t)(0.95 * (double)(n - 1) + 0.5)] * 1e3;
    *p99 = v[(size_t)(0.99 * (double)(n - 1) + 0.5)] * 1e3;
    size_t over = 0;
    for (size_t i = 0; i < n; i++) over += v[i] * 1e3 > s->o.ttfa_target_ms;
    *miss = (double)over / (double)n;
    return n;
}

/* Categories against the target T (documented in docs/API.md): p95 <= T EXCELLENT,
 * <= 2T GOOD, <= 4T NEEDS_IMPROVEMENT, else CRITICAL. */
static const char *ttfa_category(double p95, double target, size_t n) {
    if (!n) return "NO_DATA";
    if (p95 <= target) return "EXCELLENT";
    if (p95 <= 2 * target) return "GOOD";
    if (p95 <= 4 * target) return "NEEDS_IMPROVEMENT";
    return "CRITICAL";
}

/* What to change, from which step dominates the median TTFA and how streams fare: a list of
 * short sentences naming the flag to turn (empty when TTFA is on target and no stream ran dry). */
static void add_recommendations(koe_server *s, cJSON *t, size_t n, double p50, const char *slowest,
                                double slowest_ms) {
    cJSON *rec = cJSON_AddArrayToObject(t, "recommendations");
    if (!n) return;
    koe_pipeline_opts po;
    koe_pipeline_get_opts(s->pipe, &po);
    koe_pipeline_stats ps;
    koe_pipeline_get_stats(s->pipe, &ps);
    const char *prec = koe_pipeline_precision(s->pipe);
    char line[320];
    if (ps.late_segments > 0) {
        snprintf(line, sizeof line,
                 "%llu segments were ready only after the audio before them had played out "
                 "(%.0f ms in all): raise --first-segment-max (now %d) or lower --segment-ramp "
                 "(now %.2g)%s",
                 (unsigned long long)ps.late_segments, ps.late_seconds * 1e3, po.first_segment_max,
                 po.segment_ramp,
                 po.optimize ? "; the optimizer raises the first segment by itself" : "");
        cJSON_AddItemToArray(rec, cJSON_CreateString(line));
    }
    if (p50 <= s->o.ttfa_target_ms || !slowest) return;
    if (!strcmp(slowest, "vocoder") || !strcmp(slowest, "synthesis")) {
        snprintf(line, sizeof line,
                 "the first segment's synthesis dominates (%.0f of %.0f ms): lower "
                 "--first-segment-max (now %d)%s%s",
                 slowest_ms, p50, po.first_segment_max,
                 prec && strcmp(prec, "fp32") ? "" : ", or use a faster --precision (bf16)",
                 po.optimize ? "" : ", or let --optimize 1 tune it");
    } else if (!strcmp(slowest, "encoder_and_predictor")) {
        snprintf(line, sizeof line,
                 "the first segment's text side dominates (%.0f of %.0f ms): lower "
                 "--first-segment-max (now %d)",
                 slowest_ms, p50, po.first_segment_max);
    } else if (!strcmp(slowest, "queue_wait")) {
        snprintf(line, sizeof line,
                 "requests wait for a worker (%.0f of %.0f ms): the server is over capacity; add "
                 "instances behind the load balancer (deploy/nginx), or lower --max-queue so "
                 "that clients get 503 and retry elsewhere",
                 slowest_ms, p50);
    } else if (!strcmp(slowest, "front_end")) {
        snprintf(line, sizeof line,
                 "cutting the text into segments dominates (%.0f of %.0f ms): send long texts "
                 "in smaller requests",
                 slowest_ms, p50);
    } else if (!strcmp(slowest, "audio_encoding")) {
        snprintf(line, sizeof line,
                 "encoding the first audio dominates (%.0f of %.0f ms): ask for pcm or wav "
                 "instead of a compressed format",
                 slowest_ms, p50);
    } else if (!strcmp(slowest, "first_write")) {
        snprintf(line, sizeof line,
                 "handing the first bytes to the network dominates (%.0f of %.0f ms): the "
                 "client or a proxy reads slowly (turn proxy buffering off)",
                 slowest_ms, p50);
    } else {
        snprintf(line, sizeof line,
                 "reading the request dominates (%.0f of %.0f ms): the client sends its body "
                 "slowly",
                 slowest_ms, p50);
    }
    cJSON_AddItemToArray(rec, cJSON_CreateString(line));
}

/* The TTFA figures of /status and /v1/performance/ttfa: percentiles, target, miss rate,
 * category, and the breakdown: per mark, when requests reached it (ms since arrival), and the
 * step between consecutive marks that takes longest at the median (where to look first). */
static cJSON *ttfa_json(koe_server *s) {
    double p50, p95, p99, miss;
    size_t n = ttfa_percentiles(s, &p50, &p95, &p99, &miss);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "samples", (double)n);
    cJSON_AddNumberToObject(t, "p50_ms", round(p50 * 10) / 10);
    cJSON_AddNumberToObject(t, "p95_ms", round(p95 * 10) / 10);
    cJSON_AddNumberToObject(t, "p99_ms", round(p99 * 10) / 10);
    cJSON_AddNumberToObject(t, "target_ms", s->o.ttfa_target_ms);
    cJSON_AddNumberToObject(t, "miss_rate", miss);
    cJSON_AddStringToObject(t, "category", ttfa_category(p95, s->o.ttfa_target_ms, n));
    cJSON *st = cJSON_AddObjectToObject(t, "stages");
    double *v = malloc(TTFA_WINDOW * sizeof *v), med[NSTAGES + 1];
    for (int k = 0; v && k < NSTAGES; k++) {
        pthread_mutex_lock(&s->mu);
        size_t m = s->ttfa_n;
        memcpy(v, s->stage_ring[k], m * sizeof *v);
        pthread_mutex_unlock(&s->mu);
        double a, b, c;
        size_t got = percentiles_ms(v, m, &a, &b, &c);
        cJSON *o = cJSON_AddObjectToObject(st, stage_names[k]);
        cJSON_AddNumberToObject(o, "samples", (double)got);
        cJSON_AddNumberToObject(o, "p50_ms", round(a * 10) / 10);
        cJSON_AddNumberToObject(o, "p95_ms", round(b * 10) / 10);
        cJSON_AddNumberToObject(o, "p99_ms", round(c * 10) / 10);
        med[k] = got ? a : -1;
    }
    free(v);
    /* The steps between consecutive marks, as medians. The text side's mark exists only with a
     * backend that reports it (Kokoro); without it the synthesis is one step. */
    static const struct {
        const char *name;
        int from, to;
    } steps[] = {{"reading_and_parsing", -1, ST_PARSED},
                 {"queue_wait", ST_PARSED, ST_WORKER},
                 {"front_end", ST_WORKER, ST_FRONT_END},
                 {"encoder_and_predictor", ST_FRONT_END, ST_TEXT_SIDE},
                 {"vocoder", ST_TEXT_SIDE, ST_FIRST_SEGMENT},
                 {"synthesis", ST_FRONT_END, ST_FIRST_SEGMENT},
                 {"audio_encoding", ST_FIRST_SEGMENT, ST_FIRST_ENCODED},
                 {"first_write", ST_FIRST_ENCODED, NSTAGES}};
    med[NSTAGES] = p50;
    const char *slowest = NULL;
    double worst = -1;
    cJSON *sj = cJSON_AddObjectToObject(t, "steps_p50_ms");
    for (size_t i = 0; n && v && i < sizeof steps / sizeof steps[0]; i++) {
        if (!strcmp(steps[i].name, "synthesis") && med[ST_TEXT_SIDE] >= 0) continue;
        double from = steps[i].from < 0 ? 0 : med[steps[i].from], to = med[steps[i].to];
        if (from < 0 || to < 0) continue;
        cJSON_AddNumberToObject(sj, steps[i].name, round((to - from) * 10) / 10);
        if (to - from > worst) worst = to - from, slowest = steps[i].name;
    }
    if (slowest) {
        cJSON_AddStringToObject(t, "slowest_step", slowest);
        cJSON_AddNumberToObject(t, "slowest_step_p50_ms", round(worst * 10) / 10);
    } else {
        cJSON_AddNullToObject(t, "slowest_step");
    }
    add_recommendations(s, t, n, p50, slowest, worst);
    return t;
}

/* ------------------------------------------------------------------ GET endpoints */

static enum MHD_Result handle_voices(request *r, struct MHD_Connection *c) {
    const koe_voices *v = koe_pipeline_voices(r->s->pipe);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "voices");
    for (size_t i = 0; v && i < koe_voices_count(v); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", koe_voices_name(v, i));
        cJSON_AddStringToObject(o, "language", koe_voices_lang(v, i));
        cJSON_AddStringToObject(o, "gender", koe_voices_gender(v, i));
        cJSON_AddItemToArray(arr, o);
    }
    return send_json(r, c, 200, root);
}

static enum MHD_Result handle_models(request *r, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(root, "data");
    const char *ids[] = {"kokoro", "tts-1", "tts-1-hd"};
    for (int i = 0; i < 3; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", ids[i]);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "koe");
        cJSON_AddItemToArray(arr, m);
    }
    return send_json(r, c, 200, root);
}

/* Both caches, as /status shows them. */
static cJSON *caches_json(koe_server *s) {
    audio_cache_stats a;
    audio_cache_get_stats(s->acache, &a);
    koe_text_cache_stats t;
    koe_text_cache_get_stats(&t);
    cJSON *o = cJSON_CreateObject(), *ao = cJSON_AddObjectToObject(o, "audio"),
          *po = cJSON_AddObjectToObject(o, "phonemes");
    cJSON_AddNumberToObject(ao, "hits", (double)a.hits);
    cJSON_AddNumberToObject(ao, "misses", (double)a.misses);
    cJSON_AddNumberToObject(ao, "entries", (double)a.entries);
    cJSON_AddNumberToObject(ao, "bytes", (double)a.bytes);
    cJSON_AddNumberToObject(ao, "capacity_bytes", (double)a.capacity);
    cJSON_AddNumberToObject(ao, "evictions", (double)a.evictions);
    cJSON_AddNumberToObject(ao, "collecting_bytes", (double)a.pending);
    cJSON_AddNumberToObject(po, "hits", (double)t.hits);
    cJSON_AddNumberToObject(po, "misses", (double)t.misses);
    cJSON_AddNumberToObject(po, "entries", (double)t.entries);
    cJSON_AddNumberToObject(po, "bytes", (double)t.bytes);
    cJSON_AddNumberToObject(po, "capacity_bytes", (double)t.capacity);
    return o;
}

static enum MHD_Result handle_status(request *r, struct MHD_Connection *c) {
    koe_server *s = r->s;
    koe_pipeline_stats ps;
    koe_pipeline_get_stats(s->pipe, &ps);
    cJSON *root = cJSON_CreateObject();
    int kokoro = koe_pipeline_backend(s->pipe) == KOE_BACKEND_KOKORO;
    cJSON_AddStringToObject(root, "status", s->ready ? "online" : "initializing");
    cJSON_AddStringToObject(root, "backend", koe_pipeline_backend_name(s->pipe));
    cJSON_AddBoolToObject(root, "model_loaded", kokoro);
    if (kokoro)
        cJSON_AddStringToObject(root, "model", koe_pipeline_model_path(s->pipe));
    else
        cJSON_AddStringToObject(root, "hint",
                                "espeak-ng is speaking: put kokoro-v1_0.pth in the data folder "
                                "(koe download fetches it) or pass --model FILE for Kokoro");
    const koe_voices *v = koe_pipeline_voices(s->pipe);
    cJSON_AddNumberToObject(root, "voices", v ? (double)koe_voices_count(v) : 0);
    cJSON_AddNumberToObject(root, "workers", koe_pipeline_workers(s->pipe));
    if (kokoro) cJSON_AddStringToObject(root, "precision", koe_pipeline_precision(s->pipe));
    koe_pipeline_opts po;
    koe_pipeline_get_opts(s->pipe, &po);
    cJSON *pl = cJSON_AddObjectToObject(root, "pipeline");
    cJSON_AddNumberToObject(pl, "workers", po.workers);
    cJSON_AddNumberToObject(pl, "express_workers", po.express_workers);
    cJSON_AddNumberToObject(pl, "threads_per_worker", po.threads);
    cJSON_AddNumberToObject(pl, "lookahead_segments", po.lookahead);
    cJSON_AddNumberToObject(pl, "max_active", po.max_active);
    cJSON_AddNumberToObject(pl, "first_segment_min", po.first_segment_min);
    cJSON_AddNumberToObject(pl, "first_segment_max", po.first_segment_max);
    cJSON_AddNumberToObject(pl, "segment_ramp", po.segment_ramp);
    cJSON_AddNumberToObject(pl, "segments_running", ps.segments_running);
    cJSON_AddNumberToObject(pl, "segments_ready", ps.segments_ready);
    cJSON_AddNumberToObject(pl, "late_segments", (double)ps.late_segments);
    cJSON_AddNumberToObject(pl, "late_ms", round(ps.late_seconds * 1e4) / 10);
    cJSON *opt = cJSON_AddObjectToObject(root, "optimizer");
    cJSON_AddBoolToObject(opt, "enabled", po.optimize);
    cJSON_AddNumberToObject(opt, "first_segment_max", po.first_segment_max);
    cJSON_AddNumberToObject(opt, "later_threads", po.later_threads);
    cJSON_AddNumberToObject(opt, "target_ms", po.ttfa_target * 1000.0);
    koe_pipeline_decision dec[16];
    int nd = koe_pipeline_get_decisions(s->pipe, dec, 16);
    cJSON *da = cJSON_AddArrayToObject(opt, "decisions");
    for (int i = 0; i < nd; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "at_s", round(dec[i].at * 10) / 10);
        cJSON_AddNumberToObject(o, "from", dec[i].first_segment_max_from);
        cJSON_AddNumberToObject(o, "to", dec[i].first_segment_max_to);
        cJSON_AddNumberToObject(o, "segment_ramp_from", dec[i].segment_ramp_from);
        cJSON_AddNumberToObject(o, "segment_ramp_to", dec[i].segment_ramp_to);
        cJSON_AddNumberToObject(o, "later_threads_from", dec[i].later_threads_from);
        cJSON_AddNumberToObject(o, "later_threads_to", dec[i].later_threads_to);
        cJSON_AddStringToObject(o, "reason", dec[i].reason);
        cJSON_AddItemToArray(da, o);
    }
    cJSON *prov = cJSON_AddArrayToObject(root, "providers");
    cJSON_AddItemToArray(prov, cJSON_CreateString(kokoro ? "CPU (OpenBLAS)" : "espeak-ng"));
    cJSON *hw = cJSON_AddObjectToObject(root, "hardware_acceleration");
    cJSON_AddBoolToObject(hw, "gpu", 0);
    cJSON_AddNumberToObject(hw, "cpu_cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    pthread_mutex_lock(&s->mu);
    double avg = s->speech_total ? s->infer_ms_sum / (double)s->speech_total : 0;
    double rate = s->speech_total ? (double)s->speech_ok / (double)s->speech_total : 1;
    uint64_t total = s->speech_total;
    int active = s->active_streams;
    pthread_mutex_unlock(&s->mu);
    cJSON *perf = cJSON_AddObjectToObject(root, "performance_stats");
    cJSON_AddNumberToObject(perf, "average_inference_ms", round(avg * 10) / 10);
    cJSON_AddNumberToObject(perf, "total_requests", (double)total);
    cJSON_AddNumberToObject(perf, "success_rate", rate);
    cJSON_AddNumberToObject(perf, "active_streams", active);
    cJSON_AddNumberToObject(perf, "queue_depth", ps.queued);
    cJSON_AddNumberToObject(perf, "audio_seconds", ps.audio_seconds);
    cJSON_AddNumberToObject(perf, "real_time_factor",
                            ps.audio_seconds > 0 ? ps.synth_seconds / ps.audio_seconds : 0);
    cJSON_AddItemToObject(root, "ttfa", ttfa_json(s));
    cJSON_AddItemToObject(root, "caches", caches_json(s));
    return send_json(r, c, 200, root);
}

static enum MHD_Result handle_ttfa(request *r, struct MHD_Connection *c) {
    return send_json(r, c, 200, ttfa_json(r->s));
}

static void trim_heap(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static enum MHD_Result handle_metrics(request *r, struct MHD_Connection *c) {
    koe_server *s = r->s;
    /* A scrape that is the only request in flight trims first what the last speech left: the
     * speech may have ended while an earlier scrape was in flight, which skipped the trim, and
     * this way a scrape that reports koe_requests_in_flight 1 reports RSS after the trim. */
    pthread_mutex_lock(&s->mu);
    int trim = s->in_flight == 1 && s->trim_pending;
    if (trim) s->trim_pending = 0;
    pthread_mutex_unlock(&s->mu);
    if (trim) trim_heap();
    koe_pipeline_stats ps;
    koe_pipeline_get_stats(s->pipe, &ps);
    koe_buf b = {0};
    koe_buf_append_str(&b, "# HELP koe_requests_total HTTP requests by status code.\n"
                           "# TYPE koe_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < 32 && s->statuses[i].code; i++)
        koe_buf_printf(&b, "koe_requests_total{code=\"%d\"} %llu\n", s->statuses[i].code,
                       (unsigned long long)s->statuses[i].n);
    koe_buf_append_str(&b, "# HELP koe_ttfa_seconds Time to first audio byte, server side.\n"
                           "# TYPE koe_ttfa_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += s->ttfa_bucket[i];
        koe_buf_printf(&b, "koe_ttfa_seconds_bucket{le=\"%g\"} %llu\n", ttfa_buckets[i],
                       (unsigned long long)cum);
    }
    cum += s->ttfa_bucket[NBUCKETS];
    koe_buf_printf(&b, "koe_ttfa_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    koe_buf_printf(&b, "koe_ttfa_seconds_sum %.6f\nkoe_ttfa_seconds_count %llu\n", s->ttfa_sum,
                   (unsigned long long)s->ttfa_count);
    int active = s->active_streams, in_flight = s->in_flight;
    koe_buf_printf(&b,
                   "# HELP koe_client_disconnects_total Requests ended by the client going away.\n"
                   "# TYPE koe_client_disconnects_total counter\n"
                   "koe_client_disconnects_total{reason=\"closed\"} %llu\n"
                   "koe_client_disconnects_total{reason=\"timeout\"} %llu\n",
                   (unsigned long long)s->client_gone, (unsigned long long)s->client_timeouts);
    pthread_mutex_unlock(&s->mu);
    koe_buf_printf(
        &b,
        "# HELP koe_active_streams Speech responses being streamed.\n"
        "# TYPE koe_active_streams gauge\nkoe_active_streams %d\n"
        "# HELP koe_requests_in_flight HTTP requests being handled, this scrape included.\n"
        "# TYPE koe_requests_in_flight gauge\nkoe_requests_in_flight %d\n"
        "# HELP koe_queue_depth Jobs waiting for their first segment to start.\n"
        "# TYPE koe_queue_depth gauge\nkoe_queue_depth %d\n"
        "# HELP koe_jobs_running Jobs started and not finished (synthesizing or streaming).\n"
        "# TYPE koe_jobs_running gauge\nkoe_jobs_running %d\n"
        "# HELP koe_jobs_total Finished jobs by outcome.\n"
        "# TYPE koe_jobs_total counter\n"
        "koe_jobs_total{outcome=\"done\"} %llu\n"
        "koe_jobs_total{outcome=\"failed\"} %llu\n"
        "koe_jobs_total{outcome=\"cancelled\"} %llu\n"
        "koe_jobs_total{outcome=\"rejected\"} %llu\n"
        "# HELP koe_audio_seconds_total Audio produced.\n"
        "# TYPE koe_audio_seconds_total counter\nkoe_audio_seconds_total %.3f\n"
        "# HELP koe_synthesis_seconds_total Worker time spent on jobs.\n"
        "# TYPE koe_synthesis_seconds_total counter\nkoe_synthesis_seconds_total %.3f\n"
        "# HELP koe_real_time_factor Synthesis time / audio time over all jobs.\n"
        "# TYPE koe_real_time_factor gauge\nkoe_real_time_factor %.4f\n"
        "# HELP koe_ready 1 once warm-up is done.\n# TYPE koe_ready gauge\nkoe_ready %d\n",
        active, in_flight, ps.queued, ps.running, (unsigned long long)ps.jobs_done,
        (unsigned long long)ps.jobs_failed, (unsigned long long)ps.jobs_cancelled,
        (unsigned long long)ps.jobs_rejected, ps.audio_seconds, ps.synth_seconds,
        ps.audio_seconds > 0 ? ps.synth_seconds / ps.audio_seconds : 0, s->ready);
    koe_pipeline_opts po;
    koe_pipeline_get_opts(s->pipe, &po);
    koe_buf_printf(
        &b,
        "# HELP koe_segments_running Segments on a worker now.\n"
        "# TYPE koe_segments_running gauge\nkoe_segments_running %d\n"
        "# HELP koe_segments_ready Segments synthesized, not yet taken by their client.\n"
        "# TYPE koe_segments_ready gauge\nkoe_segments_ready %d\n"
        "# HELP koe_first_segment_max First-segment length in characters (the "
        "optimizer's).\n"
        "# TYPE koe_first_segment_max gauge\nkoe_first_segment_max %d\n"
        "# HELP koe_late_segments_total Segments ready only after the audio before them would "
        "have played out (an underrun for a client playing from the first byte).\n"
        "# TYPE koe_late_segments_total counter\nkoe_late_segments_total %llu\n"
        "# HELP koe_late_seconds_total The sum of those delays.\n"
        "# TYPE koe_late_seconds_total counter\nkoe_late_seconds_total %.3f\n",
        ps.segments_running, ps.segments_ready, po.first_segment_max,
        (unsigned long long)ps.late_segments, ps.late_seconds);
    audio_cache_stats a;
    audio_cache_get_stats(s->acache, &a);
    koe_text_cache_stats t;
    koe_text_cache_get_stats(&t);
    koe_buf_printf(&b,
                   "# HELP koe_cache_hits_total Cache lookups answered from the cache.\n"
                   "# TYPE koe_cache_hits_total counter\n"
                   "koe_cache_hits_total{cache=\"audio\"} %llu\n"
                   "koe_cache_hits_total{cache=\"phoneme\"} %llu\n"
                   "# HELP koe_cache_misses_total Cache lookups that found nothing.\n"
                   "# TYPE koe_cache_misses_total counter\n"
                   "koe_cache_misses_total{cache=\"audio\"} %llu\n"
                   "koe_cache_misses_total{cache=\"phoneme\"} %llu\n"
                   "# HELP koe_cache_entries Entries held.\n"
                   "# TYPE koe_cache_entries gauge\n"
                   "koe_cache_entries{cache=\"audio\"} %zu\n"
                   "koe_cache_entries{cache=\"phoneme\"} %zu\n"
                   "# HELP koe_cache_bytes Bytes held (at most the capacity).\n"
                   "# TYPE koe_cache_bytes gauge\n"
                   "koe_cache_bytes{cache=\"audio\"} %zu\n"
                   "koe_cache_bytes{cache=\"phoneme\"} %zu\n"
                   "# HELP koe_cache_capacity_bytes The bound in bytes (0 = off).\n"
                   "# TYPE koe_cache_capacity_bytes gauge\n"
                   "koe_cache_capacity_bytes{cache=\"audio\"} %zu\n"
                   "koe_cache_capacity_bytes{cache=\"phoneme\"} %zu\n"
                   "# HELP koe_cache_evictions_total Entries evicted to stay under the bound.\n"
                   "# TYPE koe_cache_evictions_total counter\n"
                   "koe_cache_evictions_total{cache=\"audio\"} %llu\n",
                   (unsigned long long)a.hits, (unsigned long long)t.hits,
                   (unsigned long long)a.misses, (unsigned long long)t.misses, a.entries, t.entries,
                   a.bytes, t.bytes, a.capacity, t.capacity, (unsigned long long)a.evictions);
    enum MHD_Result ret =
        send_bytes(r, c, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    koe_buf_free(&b);
    return ret;
}

/* ------------------------------------------------------------------ speech */

/* OpenAI's voice names, mapped to Kokoro voices of a similar character (docs/API.md). */
static const char *map_openai_voice(const char *v) {
    static const char *const map[][2] = {
        {"alloy", "af_alloy"}, {"ash", "am_adam"},     {"ballad", "bm_george"},
        {"coral", "af_heart"}, {"echo", "am_echo"},    {"fable", "bm_fable"},
        {"onyx", "am_onyx"},   {"nova", "af_nova"},    {"sage", "bf_emma"},
        {"shimmer", "af_sky"}, {"verse", "am_michael"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(v, map[i][0])) return map[i][1];
    return v;
}

/* Whether the client closed its side. libmicrohttpd only notices on its next write, and no
 * write happens while a job waits for a worker or its first segment: look at the socket. */
static int client_closed(request *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char byte;
    ssize_t n = recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void stop_collecting(request *r) {
    audio_cache_unreserve(r->s->acache, r->collect.len);
    koe_buf_free(&r->collect);
    r->collecting = 0;
}

/* Keeps a copy of the bytes handed out, for the audio cache, while the collection budget
 * allows; past it (or past the largest entry) this answer is simply not cached. The bytes
 * collected are the bytes reserved. */
static void collect_bytes(request *r, const void *p, size_t n) {
    if (!r->collecting) return;
    audio_cache *ac = r->s->acache;
    if (r->collect.len + n <= audio_cache_max_entry(ac) && audio_cache_reserve(ac, n)) {
        if (!koe_buf_append(&r->collect, p, n)) return;
        audio_cache_unreserve(ac, n);
    }
    stop_collecting(r);
}

/* Hands out up to max bytes of src[*pos, len): the first of them is the first audio byte. */
static ssize_t hand_out(request *r, const char *src, size_t len, size_t *pos, char *buf,
                        size_t max) {
    size_t n = len - *pos < max ? len - *pos : max;
    memcpy(buf, src + *pos, n);
    *pos += n;
    if (r->t_first == 0) r->t_first = koe_now_s();
    r->bytes_out += n;
    return (ssize_t)n;
}

/* A streamed answer from the audio cache. */
static ssize_t hit_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    request *r = cls;
    if (r->hit_pos >= r->hit->len) return MHD_CONTENT_READER_END_OF_STREAM;
    return hand_out(r, (const char *)r->hit->data, r->hit->len, &r->hit_pos, buf, max);
}

/* The connection's idle timeout is for slow clients. While a stream waits for its next segment
 * the server is the slow side (a loaded machine can take longer than --timeout), so the timeout
 * is paused then; setting it again from 0 restarts its clock (libmicrohttpd). A client that stops
 * reading is still timed out: then MHD waits on the socket and never calls the reader. */
static void pause_idle_timeout(request *r, int pause) {
    if (r->idle_timeout_off == pause) return;
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              pause ? 0u : (unsigned)r->s->o.timeout_s);
    r->idle_timeout_off = pause;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    request *r = cls;
    if (r->first_pos < r->first_len)
        return hand_out(r, r->first, r->first_len, &r->first_pos, buf, max);
    if (r->job_complete) return MHD_CONTENT_READER_END_OF_STREAM;
    for (;;) {
        koe_error err = {0};
        ssize_t n = koe_job_read(r->job, buf, max, 200, &err);
        if (n != -2) pause_idle_timeout(r, 0);
        if (n > 0) {
            if (r->t_first == 0) r->t_first = koe_now_s();
            r->bytes_out += (size_t)n;
            collect_bytes(r, buf, (size_t)n);
            return n;
        }
        if (n == 0) {
            r->job_complete = 1;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        /* A failed job ends the stream without its last chunk, so the client sees it is
         * incomplete instead of a truncated file passed off as whole. */
        if (n == -1) {
            fprintf(stderr, "koe: request %llu: %s\n", (unsigned long long)r->id, err.msg);
            r->status = 500;
            r->failed = 1;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (client_closed(r)) {
            r->client_closed = 1;
            return MHD_CONTENT_READER_END_WITH_ERROR; /* the job is cancelled on completion */
        }
        pause_idle_timeout(r, 1);
    }
}

static void stream_free(void *cls) {
    (void)cls; /* the request owns everything */
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A whole wav in hand: its header gets the real sizes in place of the streaming "unknown
 * length", so players can show the duration and seek. */
static void set_wav_sizes(void *data, size_t len) {
    unsigned char *h = data;
    if (len < 44 || len - 8 > UINT32_MAX || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4) ||
        memcmp(h + 36, "data", 4))
        return;
    put_le32(h + 4, (uint32_t)(len - 8));
    put_le32(h + 40, (uint32_t)(len - 44));
}

/* cJSON turns \u0000 into a C string's end, which would silently cut the text there: a NUL,
 * raw or escaped, is refused before parsing. Escape pairs are skipped whole, so an escaped
 * backslash followed by "u0000" (literal text) is not mistaken for one. */
static int has_nul(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) return 1;
        if (s[i] != '\\' || i + 1 >= n) continue;
        if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return 1;
        i++;
    }
    return 0;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\f\v", s[i])) return 0;
    return 1;
}

/* The status of a job that failed before any audio: the request's own fault (a text the front
 * end refuses, say) is a 400, a full queue a 503, anything else the server's 500. */
static int failure_status(int code) {
    return code == KOE_ERR_INVALID || code == KOE_ERR_UNSUPPORTED || code == KOE_ERR_NOT_FOUND ? 400
           : code == KOE_ERR_LIMIT                                                             ? 503
                                   : 500;
}

/* The audio cache's key: every field that changes the answer's bytes (the backend, voice,
 * language, speed as the pipeline takes it, format, loudness normalization, noise seed, text),
 * each string prefixed by its length so that no two requests share a key. Server-wide settings
 * stay fixed for the cache's lifetime (it lives in memory). */
static int audio_key(koe_buf *k, const koe_speech_request *sr, const char *backend) {
    const char *lang = sr->lang ? sr->lang : koe_text_lang_for_voice(sr->voice, NULL);
    if (!lang) lang = "";
    return koe_buf_printf(k, "koe-audio-1 %zu:%s %zu:%s %zu:%s %a %s %d %llu %zu:", strlen(backend),
                          backend, strlen(sr->voice), sr->voice, strlen(lang), lang,
                          (double)sr->speed, koe_format_name(sr->format), sr->normalize,
                          (unsigned long long)sr->seed, sr->len) ||
           koe_buf_append(k, sr->text, sr->len);
}

static void add_speech_headers(request *r, struct MHD_Response *resp, koe_format format,
                               const char *cache) {
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)r->id);
    MHD_add_response_header(resp, "Content-Type", koe_format_mime(format));
    MHD_add_response_header(resp, "X-Request-Id", id);
    MHD_add_response_header(resp, "X-Koe-Backend", koe_pipeline_backend_name(r->s->pipe));
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (cache) MHD_add_response_header(resp, "X-Koe-Cache", cache);
}

/* An answer replayed from the audio cache: the same bytes as the answer that was stored,
 * streamed (chunked) or whole, as the request asks. */
static enum MHD_Result answer_cached(request *r, struct MHD_Connection *c, koe_format format) {
    koe_server *s = r->s;
    struct MHD_Response *resp;
    if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, hit_reader, r,
                                                 stream_free);
    } else {
        /* A whole wav gets its real sizes; the cached bytes stay as they were streamed. */
        koe_buf all = {0};
        if (koe_buf_append(&all, r->hit->data, r->hit->len)) return MHD_NO;
        if (format == KOE_FORMAT_WAV) set_wav_sizes(all.data, all.len);
        resp = MHD_create_response_from_buffer(all.len, all.data, MHD_RESPMEM_MUST_COPY);
        koe_buf_free(&all);
        r->bytes_out = r->hit->len;
    }
    if (!resp) return MHD_NO;
    add_speech_headers(r, resp, format, "hit");
    pthread_mutex_lock(&s->mu);
    s->active_streams++;
    pthread_mutex_unlock(&s->mu);
    r->counted = 1;
    if (!r->stream) r->t_first = koe_now_s();
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    r->answered = 1;
    return ret;
}

/* Waits for a streamed job's first bytes (kept in r->first for the reader) or its end. 0 with
 * bytes (or at a complete end without any), -1 when the job failed (err), -2 when the client
 * went away meanwhile. */
static int wait_first_bytes(request *r, koe_error *err) {
    enum { FIRST_CAP = 32 * 1024 };
    r->first = malloc(FIRST_CAP);
    if (!r->first) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory"), -1;
    for (;;) {
        koe_error e = {0};
        ssize_t n = koe_job_read(r->job, r->first, FIRST_CAP, 200, &e);
        if (n >= 0) {
            r->first_len = (size_t)n;
            if (n == 0) r->job_complete = 1;
            collect_bytes(r, r->first, (size_t)n);
            return 0;
        }
        if (n == -1) {
            *err = e;
            return -1;
        }
        if (client_closed(r)) {
            r->client_closed = 1;
            return -2;
        }
    }
}

static enum MHD_Result handle_speech(request *r, struct MHD_Connection *c, int legacy_path) {
    koe_server *s = r->s;
    r->is_speech = 1;
    if (!r->body.len)
        return send_error(r, c, 400, NULL, NULL, "the request body is empty: send JSON");
    if (has_nul(r->body.data, r->body.len))
        return send_error(r, c, 400, NULL, NULL,
                          "the request contains U+0000 (NUL), which text cannot carry");
    cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
    if (!j) return send_error(r, c, 400, NULL, NULL, "the request body is not valid JSON");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return send_error(r, c, 400, NULL, NULL, "the request body must be a JSON object");
    }
    /* cJSON would silently take the first of two equal keys: a field koe reads must appear
     * once. (Only the known fields are counted, so a huge body costs linear time.) */
    static const char *const known[] = {"input",  "text",  "voice",  "model", "response_format",
                                        "format", "speed", "stream", "lang",  "language"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int seen = 0;
        for (const cJSON *a = j->child; a; a = a->next)
            seen += a->string && !strcmp(a->string, known[k]);
        if (seen > 1) {
            enum MHD_Result dup = send_error(r, c, 400, known[k], NULL,
                                             "field '%s' appears more than once", known[k]);
            cJSON_Delete(j);
            return dup;
        }
    }
    cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
    int legacy = legacy_path || (!input && text);
    cJSON *in = input ? input : text;
    const char *pname = input ? "input" : "text";
    enum MHD_Result ret;
#define FAIL(code, param, ...)                                                                     \
    do {                                                                                           \
        ret = send_error(r, c, code, param, NULL, __VA_ARGS__);                                    \
        cJSON_Delete(j);                                                                           \
        return ret;                                                                                \
    } while (0)
    if (!in) FAIL(400, "input", "missing required field 'input'");
    if (!cJSON_IsString(in)) FAIL(400, pname, "'%s' must be a string", pname);
    size_t len = strlen(in->valuestring);
    if (koe_utf8_validate(in->valuestring, len) != len)
        FAIL(400, pname, "'%s' is not valid UTF-8", pname);
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) chars += ((unsigned char)in->valuestring[i] & 0xC0) != 0x80;
    size_t limit = legacy && text && !input ? 4500 : s->o.max_input;
    if (chars > limit)
        FAIL(413, pname, "'%s' has %zu characters; the limit is %zu", pname, chars, limit);
    if (is_blank(in->valuestring, len)) FAIL(400, pname, "'%s' is empty", pname);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) FAIL(400, "model", "'model' must be a string");
        if (strcmp(model->valuestring, "kokoro") && strcmp(model->valuestring, "tts-1") &&
            strcmp(model->valuestring, "tts-1-hd"))
            FAIL(400, "model", "unknown model '%.60s': use kokoro (tts-1 and tts-1-hd are aliases)",
                 model->valuestring);
    }
    cJSON *voice = cJSON_GetObjectItemCaseSensitive(j, "voice");
    const char *vname = "af_heart";
    if (voice && !cJSON_IsNull(voice)) {
        if (!cJSON_IsString(voice)) FAIL(400, "voice", "'voice' must be a string");
        vname = map_openai_voice(voice->valuestring);
    }
    cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    const char *fparam = "response_format";
    if (!fmt) fmt = cJSON_GetObjectItemCaseSensitive(j, "format"), fparam = "format";
    const char *fname = legacy ? "pcm" : "mp3";
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt)) FAIL(400, fparam, "'%s' must be a string", fparam);
        fname = fmt->valuestring;
    }
    koe_format format;
    koe_error err = {0};
    if (koe_format_parse(fname, &format, &err))
        FAIL(400, fparam, "unknown %s '%.20s': use mp3, opus, aac, flac, wav or pcm", fparam,
             fname);
    double speed = 1.0;
    cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "speed");
    if (sp && !cJSON_IsNull(sp)) {
        if (!cJSON_IsNumber(sp)) FAIL(400, "speed", "'speed' must be a number");
        speed = sp->valuedouble;
        if (!(speed >= 0.25 && speed <= 4.0))
            FAIL(400, "speed", "'speed' must be between 0.25 and 4.0 (got %g)", speed);
    }
    int stream = 1;
    cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsBool(st)) FAIL(400, "stream", "'stream' must be true or false");
        stream = cJSON_IsTrue(st);
    }
    const char *lang = NULL;
    cJSON *lg = cJSON_GetObjectItemCaseSensitive(j, "lang");
    if (!lg) lg = cJSON_GetObjectItemCaseSensitive(j, "language");
    if (lg && !cJSON_IsNull(lg)) {
        if (!cJSON_IsString(lg)) FAIL(400, "lang", "'lang' must be a string");
        lang = lg->valuestring;
    }
    koe_speech_request sr = {.text = in->valuestring,
                             .len = len,
                             .voice = vname,
                             .lang = lang,
                             .speed = (float)speed,
                             .format = format,
                             .normalize = s->o.normalize,
                             .realtime = stream};
    snprintf(r->voice, sizeof r->voice, "%s", vname);
    snprintf(r->format, sizeof r->format, "%s", koe_format_name(format));
    r->chars = chars;
    r->stream = stream;
    const char *cache_state = NULL;
    if (audio_cache_enabled(s->acache)) {
        if (audio_key(&r->key, &sr, koe_pipeline_backend_name(s->pipe))) {
            koe_buf_free(&r->key);
        } else if ((r->hit = audio_cache_get(s->acache, r->key.data, r->key.len))) {
            cJSON_Delete(j);
            return answer_cached(r, c, format);
        } else {
            r->collecting = 1;
            cache_state = "miss";
        }
    }
    r->t_submit = koe_now_s();
    r->job = koe_pipeline_submit(s->pipe, &sr, &err);
    if (!r->job) {
        if (err.code == KOE_ERR_LIMIT) FAIL(503, NULL, "%s; retry shortly", err.msg);
        const char *param = err.code == KOE_ERR_NOT_FOUND ? "voice"
                            : strstr(err.msg, "speed")    ? "speed"
                            : strstr(err.msg, "input")    ? pname
                                                          : (lang ? "lang" : "voice");
        FAIL(400, param, "%s", err.msg);
    }
    cJSON_Delete(j);
#undef FAIL
    pthread_mutex_lock(&s->mu);
    s->active_streams++;
    pthread_mutex_unlock(&s->mu);
    r->counted = 1;
    struct MHD_Response *resp;
    if (stream) {
        /* The 200 is sent only with the first bytes in hand: a job that fails before any audio
         * (the front end refusing the text, say) is answered with its error status. The reader
         * hands these bytes out at once, so the first byte leaves as early as before. */
        int got = wait_first_bytes(r, &err);
        if (got == -2) return MHD_NO; /* the client left: close, the job is cancelled */
        if (got == -1)
            return send_error(r, c, failure_status(err.code), NULL, NULL, "synthesis failed: %s",
                              err.msg);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_reader, r,
                                                 stream_free);
    } else {
        /* Not streamed: the whole file, with its length, or an error status. */
        koe_buf all = {0};
        char chunk[32768];
        ssize_t n;
        for (;;) {
            koe_error e2 = {0};
            n = koe_job_read(r->job, chunk, sizeof chunk, 1000, &e2);
            if (n > 0) {
                if (koe_buf_append(&all, chunk, (size_t)n)) n = -1;
            }
            if (n == 0 || n == -1) {
                if (n == -1) err = e2;
                break;
            }
        }
        if (n == -1) {
            koe_buf_free(&all);
            return send_error(r, c, failure_status(err.code), NULL, NULL, "synthesis failed: %s",
                              err.msg);
        }
        r->job_complete = 1;
        r->bytes_out = all.len;
        /* The cache keeps the bytes as streamed; the whole wav sent gets its real sizes. */
        unsigned char head[44];
        int wav = format == KOE_FORMAT_WAV && all.len >= 44;
        if (wav) {
            memcpy(head, all.data, 44);
            set_wav_sizes(all.data, all.len);
        }
        resp = MHD_create_response_from_buffer(all.len, all.data ? all.data : (void *)"",
                                               MHD_RESPMEM_MUST_COPY);
        if (wav) memcpy(all.data, head, 44);
        if (r->collecting && all.len <= audio_cache_max_entry(s->acache) &&
            audio_cache_reserve(s->acache, all.len)) {
            r->collect = all;
        } else {
            r->collecting = 0;
            koe_buf_free(&all);
        }
    }
    if (!resp) return MHD_NO;
    add_speech_headers(r, resp, format, cache_state);
    /* Unstreamed, the first audio byte reaches libmicrohttpd with the whole file. */
    if (!stream) r->t_first = koe_now_s();
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    r->answered = 1;
    return ret;
}

/* ------------------------------------------------------------------ routing */

static int authorized(koe_server *s, struct MHD_Connection *c) {
    if (!s->o.api_key || !*s->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    /* Constant time over the key's length: no early exit on the first differing byte. */
    size_t kl = strlen(s->o.api_key), hl = strlen(h);
    unsigned diff = (unsigned)(kl ^ hl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)s->o.api_key[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

static enum MHD_Result route(request *r, struct MHD_Connection *c, const char *url,
                             const char *method) {
    koe_server *s = r->s;
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(r, c, 405, NULL, "GET, HEAD", "use GET on /health");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", s->ready ? "online" : "initializing");
        cJSON_AddStringToObject(o, "backend", koe_pipeline_backend_name(s->pipe));
        return send_json(r, c, s->ready ? 200 : 503, o);
    }
    int api = !strncmp(url, "/v1/", 4) || !strcmp(url, "/audio/speech") ||
              !strcmp(url, "/voices") || !strcmp(url, "/status");
    if (api && !authorized(s, c))
        return send_error(r, c, 401, NULL, NULL,
                          "missing or wrong API key (Authorization: Bearer)");
    if (!strcmp(url, "/v1/audio/speech") || !strcmp(url, "/audio/speech")) {
        if (!post) return send_error(r, c, 405, NULL, "POST", "use POST on %s", url);
        if (r->too_large)
            return send_error(r, c, 413, NULL, NULL, "the request body is over %zu bytes",
                              s->o.max_body);
        return handle_speech(r, c, !strcmp(url, "/audio/speech"));
    }
    struct {
        const char *path;
        enum MHD_Result (*fn)(request *, struct MHD_Connection *);
    } gets[] = {{"/v1/audio/voices", handle_voices},   {"/voices", handle_voices},
                {"/v1/models", handle_models},         {"/status", handle_status},
                {"/v1/performance/ttfa", handle_ttfa}, {"/metrics", handle_metrics}};
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++)
        if (!strcmp(url, gets[i].path)) {
            if (!get) return send_error(r, c, 405, NULL, "GET, HEAD", "use GET on %s", url);
            return gets[i].fn(r, c);
        }
    const koe_web_asset *a = koe_web_asset_find(url);
    if (a) {
        if (!get) return send_error(r, c, 405, NULL, "GET, HEAD", "use GET on %s", url);
        /* The page's own files: static, so no copy; a strict policy (it needs nothing else). */
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", a->mime);
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                                "connect-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        r->status = 200;
        r->answered = 1;
        return ret;
    }
    return send_error(r, c, 404, NULL, NULL, "no such endpoint: %s %.200s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    koe_server *s = cls;
    request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->t_arrival = koe_now_s();
        r->conn = c;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        pthread_mutex_lock(&s->mu);
        r->id = ++s->next_id;
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        *con_cls = r;
        /* A body announced too large is refused before a byte of it is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            r->too_large = 1;
            return send_error(r, c, 413, NULL, NULL, "the request body is over %zu bytes",
                              s->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large && r->body.len + *upload_size <= s->o.max_body) {
            if (koe_buf_append(&r->body, upload, *upload_size)) return MHD_NO;
        } else {
            r->too_large = 1; /* chunked upload past the limit: drop the rest */
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered) return MHD_YES;
    return route(r, c, url, method);
}

/* One JSON line per request (speech, or any error): built with cJSON so that client-chosen
 * strings (voice, path) are escaped and cannot forge log fields. */
static void log_request(const request *r, int status, double ttfa, double now,
                        const koe_job_times *jt, const char *outcome) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddNumberToObject(o, "request", (double)r->id);
    cJSON_AddStringToObject(o, "method", r->method);
    cJSON_AddStringToObject(o, "path", r->path);
    cJSON_AddNumberToObject(o, "status", status);
    if (ttfa >= 0)
        cJSON_AddNumberToObject(o, "ttfa_ms", round(ttfa * 1e4) / 10);
    else
        cJSON_AddNullToObject(o, "ttfa_ms");
    cJSON_AddNumberToObject(o, "total_ms", round((now - r->t_arrival) * 1e4) / 10);
    cJSON_AddNumberToObject(o, "bytes", (double)r->bytes_out);
    if (r->is_speech) {
        cJSON_AddNumberToObject(o, "chars", (double)r->chars);
        cJSON_AddStringToObject(o, "voice", r->voice);
        cJSON_AddStringToObject(o, "format", r->format);
        cJSON_AddBoolToObject(o, "stream", r->stream);
        cJSON_AddNumberToObject(o, "queue_ms", round(jt->queue_wait * 1e4) / 10);
        cJSON_AddNumberToObject(o, "front_end_ms", round(jt->front_end * 1e4) / 10);
        cJSON_AddNumberToObject(o, "first_synth_ms", round(jt->first_synth * 1e4) / 10);
        cJSON_AddNumberToObject(o, "first_bytes_ms", round(jt->first_bytes * 1e4) / 10);
        cJSON_AddNumberToObject(o, "audio_s", round(jt->audio_seconds * 100) / 100);
        cJSON_AddNumberToObject(o, "segments", jt->segments);
        cJSON_AddNumberToObject(o, "late_segments", jt->late_segments);
        if (jt->late_segments)
            cJSON_AddNumberToObject(o, "late_ms", round(jt->late_seconds * 1e4) / 10);
        if (r->key.len) cJSON_AddStringToObject(o, "cache", r->hit ? "hit" : "miss");
    }
    if (r->error[0]) cJSON_AddStringToObject(o, "error", r->error);
    cJSON_AddStringToObject(o, "outcome", outcome);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (line) fprintf(stderr, "%s\n", line);
    free(line);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    koe_server *s = cls;
    request *r = *con_cls;
    if (!r) return;
    double now = koe_now_s();
    int daemon_stopping = toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN;
    int client_gone = r->client_closed || (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
                                           !daemon_stopping && !r->failed);
    int timed_out = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED;
    /* 499 (as nginx logs it): the client left before any answer was queued */
    int status = r->status ? r->status : client_gone ? 499 : daemon_stopping ? 503 : 500;
    koe_job_times jt = {0};
    if (r->job) {
        koe_job_get_times(r->job, &jt);
        koe_job_release(r->job); /* cancels the synthesis if it is still running */
    }
    count_status(s, status);
    /* Answers from the audio cache are not in the TTFA figures, which describe synthesis; the
     * request log has their TTFA. */
    double ttfa = r->t_first > 0 ? r->t_first - r->t_arrival : -1;
    double stat_ttfa = r->hit ? -1 : ttfa;
    /* Into the audio cache only an answer that is whole: the job ran to its complete end and the
     * response reached the client in full (never a cancelled, failed or cut one). */
    if (r->collecting) {
        if (r->job_complete && !r->failed && !r->client_closed && r->status == 200 &&
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
            size_t n = r->collect.len;
            audio_cache_put(s->acache, r->key.data, r->key.len, r->collect.data, n);
            r->collect.data = NULL;
            r->collect.len = 0;
            audio_cache_unreserve(s->acache, n);
        }
        stop_collecting(r);
    }
    audio_cache_release(s->acache, r->hit);
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    if (r->is_speech) s->trim_pending = 1;
    int trim = s->in_flight == 0 && s->trim_pending;
    if (trim) s->trim_pending = 0;
    if (timed_out)
        s->client_timeouts++;
    else if (client_gone)
        s->client_gone++;
    if (r->counted) s->active_streams--;
    if (r->job) {
        s->speech_total++;
        if (status == 200 && !client_gone) s->speech_ok++;
        s->infer_ms_sum += jt.first_synth * 1e3;
    }
    if (stat_ttfa >= 0) {
        size_t b = 0;
        while (b < NBUCKETS && ttfa > ttfa_buckets[b]) b++;
        s->ttfa_bucket[b]++;
        s->ttfa_sum += ttfa;
        s->ttfa_count++;
        s->ttfa_ring[s->ttfa_pos] = ttfa;
        double at = r->t_submit > 0 ? r->t_submit - r->t_arrival : 0;
        const double marks[NSTAGES] = {at,
                                       at + jt.queue_wait,
                                       at + jt.front_end,
                                       at + jt.first_text,
                                       at + jt.first_synth,
                                       at + jt.first_bytes};
        const int reached[NSTAGES] = {1,
                                      jt.queue_wait > 0,
                                      jt.front_end > 0,
                                      jt.first_text > 0,
                                      jt.first_synth > 0,
                                      jt.first_bytes > 0};
        for (int k = 0; k < NSTAGES; k++)
            s->stage_ring[k][s->ttfa_pos] = reached[k] ? marks[k] : -1;
        s->ttfa_pos = (s->ttfa_pos + 1) % TTFA_WINDOW;
        if (s->ttfa_n < TTFA_WINDOW) s->ttfa_n++;
    }
    pthread_mutex_unlock(&s->mu);
    if (r->is_speech || status >= 400)
        log_request(r, status, ttfa, now, &jt,
                    r->failed         ? "failed"
                    : timed_out       ? "timeout"
                    : client_gone     ? "client_gone"
                    : daemon_stopping ? "shutdown"
                                      : "complete");
    koe_buf_free(&r->body);
    koe_buf_free(&r->key);
    koe_buf_free(&r->collect);
    free(r->first);
    free(r);
    *con_cls = NULL;
    /* The last request in flight is done: give freed memory back to the system, so that RSS
     * returns to its idle level after load (docs/RELIABILITY.md measures the difference). Only
     * after speech, which is what churns memory, so that scrapes of /metrics cost nothing. */
    if (trim) trim_heap();
}

koe_server *koe_server_start(const koe_server_opts *opts, koe_pipeline *pipeline, koe_error *err) {
    koe_server *s = calloc(1, sizeof *s);
    if (!s) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->o = *opts;
    if (!s->o.host) s->o.host = "127.0.0.1";
    if (!s->o.max_body) s->o.max_body = 2u << 20;
    if (!s->o.max_input) s->o.max_input = 100000;
    if (s->o.timeout_s <= 0) s->o.timeout_s = 30;
    if (s->o.max_connections <= 0) s->o.max_connections = 256;
    if (s->o.max_per_ip <= 0) s->o.max_per_ip = 64;
    if (s->o.ttfa_target_ms <= 0) s->o.ttfa_target_ms = 150;
    s->pipe = pipeline;
    s->acache = audio_cache_new(s->o.audio_cache_bytes);
    if (!s->acache) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->o.port)};
    const char *ip = strcmp(s->o.host, "localhost") ? s->o.host : "127.0.0.1";
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
        koe_error_set(err, KOE_ERR_INVALID, "--host %s is not an IPv4 address", s->o.host);
        audio_cache_free(s->acache);
        free(s);
        return NULL;
    }
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)s->o.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)s->o.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)s->o.max_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        koe_error_set(err, KOE_ERR_IO, "cannot listen on %s:%d (in use, or not permitted)",
                      s->o.host, s->o.port);
        pthread_mutex_destroy(&s->mu);
        audio_cache_free(s->acache);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->o.port;
    return s;
}

int koe_server_port(const koe_server *s) {
    return s->port;
}
void koe_server_set_ready(koe_server *s, int ready) {
    s->ready = ready;
}

int koe_server_active(koe_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void koe_server_stop(koe_server *s, double drain_s) {
    if (!s) return;
    MHD_socket fd = MHD_quiesce_daemon(s->d); /* no new connections */
    double until = koe_now_s() + drain_s;
    while (koe_server_active(s) > 0 && koe_now_s() < until) usleep(20000);
    MHD_stop_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    pthread_mutex_destroy(&s->mu);
    audio_cache_free(s->acache);
    free(s);
}
