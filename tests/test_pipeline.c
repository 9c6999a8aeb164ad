/* The pipeline through its public API: requests refused with the right codes; the bounded byte
 * queue loses and reorders nothing whatever the buffer and read sizes (Kokoro's tiny weights
 * with a seed replay the same samples, so outputs compare byte for byte); concurrent jobs on
 * several workers each get exactly their own audio; cancellation reaches the reader and the
 * counters; a full queue refuses with KOE_ERR_LIMIT; freeing never waits on an unread job.
 * Waits poll for a state (bounded), never for a duration. */
#include "harness.h"
#include "koe/base.h"
#include "koe/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char voices_dir[4096], tiny_pth[4096], tiny_cfg[4096];
static int have_voices, have_tiny;

static const char *const story =
    "This is a long story, told so that the reader has every reason to stop early. "
    "It goes on for a while, sentence after sentence, clause after clause. "
    "Nobody will hear the end of it, because the test walks away. "
    "Still, it keeps going, and going, and going, far longer than needed. "
    "One more sentence, then another, and yet another after that. "
    "The end is nowhere in sight, which is exactly the point of it.";

static koe_speech_request req(const char *text, const char *voice, koe_format f, uint64_t seed) {
    koe_speech_request r = {.text = text,
                            .len = strlen(text),
                            .voice = voice,
                            .lang = NULL,
                            .speed = 1.0f,
                            .format = f,
                            .normalize = 0,
                            .seed = seed};
    return r;
}

/* Reads a job to its end in pieces of `piece` bytes; returns the last read's result. */
static ssize_t read_all(koe_job *j, size_t piece, koe_buf *out, koe_error *err) {
    char *buf = malloc(piece);
    ssize_t n;
    do {
        n = koe_job_read(j, buf, piece, 1000, err);
        if (n > 0) koe_buf_append(out, buf, (size_t)n);
    } while (n > 0 || n == -2);
    free(buf);
    return n;
}

static koe_pipeline *tiny_pipeline_ex(int workers, size_t job_buffer, int lookahead, int express) {
    /* one thread per segment: the engine's sums are exact per thread count, not across */
    koe_pipeline_opts o = {.workers = workers,
                           .express_workers = express,
                           .threads = 1,
                           .lookahead = lookahead,
                           .job_buffer = job_buffer,
                           .data_dir = kt_env("KOE_DATA_DIR", "data"),
                           .model_path = tiny_pth,
                           .config_path = tiny_cfg};
    koe_error err = {0};
    koe_pipeline *p = koe_pipeline_new(&o, &err);
    KT_CHECK(p, "tiny Kokoro pipeline: %s", err.msg);
    return p;
}

static koe_pipeline *tiny_pipeline_with(int workers, size_t job_buffer, int lookahead) {
    return tiny_pipeline_ex(workers, job_buffer, lookahead, 0);
}

static koe_pipeline *tiny_pipeline(int workers, size_t job_buffer) {
    return tiny_pipeline_with(workers, job_buffer, 0);
}

static koe_pipeline *espeak_pipeline(int workers, int max_queue, size_t job_buffer) {
    koe_pipeline_opts o = {.workers = workers,
                           .max_queue = max_queue,
                           .job_buffer = job_buffer,
                           .data_dir = kt_env("KOE_DATA_DIR", "data")};
    koe_error err = {0};
    koe_pipeline *p = koe_pipeline_new(&o, &err);
    KT_CHECK(p, "espeak-ng pipeline: %s", err.msg);
    return p;
}

/* Polls the counters until pred holds (up to about a minute: a state, not a duration). */
static int wait_stats(koe_pipeline *p, int (*pred)(const koe_pipeline_stats *)) {
    for (int i = 0; i < 6000; i++) {
        koe_pipeline_stats s;
        koe_pipeline_get_stats(p, &s);
        if (pred(&s)) return 1;
        usleep(10000);
    }
    return 0;
}

static void test_refusals(void) {
    koe_pipeline *p = espeak_pipeline(1, 0, 0);
    if (!p) return;
    KT_EXPECT(!strcmp(koe_pipeline_backend_name(p), "espeak-ng"));
    KT_EXPECT(koe_pipeline_backend(p) == KOE_BACKEND_ESPEAK);
    KT_EXPECT(koe_pipeline_model_path(p) == NULL);
    KT_EXPECT(koe_pipeline_workers(p) == 1);
    koe_error err = {0};
    koe_speech_request r = req("", "af_heart", KOE_FORMAT_PCM, 0);
    KT_CHECK(!koe_pipeline_submit(p, &r, &err) && err.code == KOE_ERR_INVALID, "empty: %s",
             err.msg);
    r = req("hello", "af_heart", KOE_FORMAT_PCM, 0);
    r.speed = 4.5f;
    err = (koe_error){0};
    KT_CHECK(!koe_pipeline_submit(p, &r, &err) && err.code == KOE_ERR_INVALID &&
                 strstr(err.msg, "speed"),
             "speed 4.5: %s", err.msg);
    r.speed = 0.2f;
    err = (koe_error){0};
    KT_CHECK(!koe_pipeline_submit(p, &r, &err) && strstr(err.msg, "speed"), "speed 0.2: %s",
             err.msg);
    r = req("hello", "af_heart", KOE_FORMAT_PCM, 0);
    r.lang = "xx-nowhere";
    err = (koe_error){0};
    KT_CHECK(!koe_pipeline_submit(p, &r, &err) && err.code != 0 && err.msg[0],
             "unknown language refused: %s", err.msg);
    if (have_voices) {
        r = req("hello", "af_bela", KOE_FORMAT_PCM, 0);
        err = (koe_error){0};
        KT_CHECK(!koe_pipeline_submit(p, &r, &err) && err.code == KOE_ERR_NOT_FOUND &&
                     strstr(err.msg, "af_bella"),
                 "unknown voice names a close match: %s", err.msg);
    }
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_EXPECT(s.queued == 0 && s.running == 0 && s.jobs_done == 0 && s.jobs_rejected == 0);
    koe_pipeline_free(p);
}

static int one_done(const koe_pipeline_stats *s) {
    return s->jobs_done >= 1 && s->running == 0;
}

static void test_espeak_job_completes(void) {
    koe_pipeline *p = espeak_pipeline(1, 0, 0);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r =
        req("Hello there. A short one, then a longer one follows it, with a clause or two.",
            "af_heart", KOE_FORMAT_WAV, 0);
    koe_job *j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j, "submit: %s", err.msg);
    if (!j) {
        koe_pipeline_free(p);
        return;
    }
    koe_buf out = {0};
    KT_CHECK(read_all(j, 4096, &out, &err) == 0, "read to the end: %s", err.msg);
    KT_CHECK(out.len > 44 + 24000 && !memcmp(out.data, "RIFF", 4), "a wav of %zu bytes", out.len);
    koe_job_times t;
    koe_job_get_times(j, &t);
    KT_CHECK(t.segments_done == t.segments, "%d of %d segments done", t.segments_done, t.segments);
    KT_CHECK(t.segments >= 1 && t.audio_seconds > 0.5 && t.total >= t.first_bytes &&
                 t.first_bytes >= t.front_end && t.front_end >= t.queue_wait,
             "times: %d segments, %.2f s audio, queue %.4f front %.4f first %.4f total %.4f",
             t.segments, t.audio_seconds, t.queue_wait, t.front_end, t.first_bytes, t.total);
    koe_job_release(j);
    /* the reader may see the end a moment before the worker updates the counters */
    KT_CHECK(wait_stats(p, one_done), "counted as done");
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_CHECK(s.jobs_done == 1 && s.jobs_failed == 0 && s.audio_seconds > 0.5,
             "stats: %llu done, %.2f s", (unsigned long long)s.jobs_done, s.audio_seconds);
    koe_buf_free(&out);
    koe_pipeline_free(p);
}

/* A 4 KiB queue read 97 bytes at a time gives exactly the bytes of a 1 MiB queue read in
 * 64 KiB pieces: back-pressure holds the worker, never drops or reorders. */
static void test_backpressure_exact(void) {
    if (!have_tiny) return;
    const char *text = "Hello world. The tiny model speaks, one, two, three. And then a bit more.";
    koe_buf a = {0}, b = {0};
    koe_error err = {0};
    koe_pipeline *p = tiny_pipeline(1, 0);
    if (!p) return;
    KT_EXPECT(koe_pipeline_backend(p) == KOE_BACKEND_KOKORO);
    koe_speech_request r = req(text, "af_bella", KOE_FORMAT_PCM, 7);
    koe_job *j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j && read_all(j, 65536, &a, &err) == 0, "reference run: %s", err.msg);
    koe_job_release(j);
    koe_pipeline_free(p);
    p = tiny_pipeline(1, 4096);
    if (!p) return;
    j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j && read_all(j, 97, &b, &err) == 0, "small-buffer run: %s", err.msg);
    koe_job_release(j);
    koe_pipeline_free(p);
    KT_CHECK(a.len > 4096 * 4 && a.len == b.len && !memcmp(a.data, b.data, a.len),
             "same bytes: %zu vs %zu", a.len, b.len);
    koe_buf_free(&a);
    koe_buf_free(&b);
}

/* Three jobs on two workers, read round-robin in small pieces: each is exactly what it is
 * alone. */
static void test_concurrent_jobs_isolated(void) {
    if (!have_tiny) return;
    const char *texts[3] = {"First request, first voice.", "Second request. Another voice here.",
                            "Third, and the last of them."};
    const char *voices[3] = {"af_bella", "am_adam", "af_bella:0.5+am_adam:0.5"};
    koe_buf alone[3] = {{0}}, together[3] = {{0}};
    koe_error err = {0};
    koe_pipeline *p = tiny_pipeline(1, 0);
    if (!p) return;
    for (int i = 0; i < 3; i++) {
        koe_speech_request r = req(texts[i], voices[i], KOE_FORMAT_PCM, 11 + (uint64_t)i);
        koe_job *j = koe_pipeline_submit(p, &r, &err);
        KT_CHECK(j && read_all(j, 65536, &alone[i], &err) == 0, "alone %d: %s", i, err.msg);
        koe_job_release(j);
    }
    koe_pipeline_free(p);
    /* together: with no express worker, then with three (every first task on one of them,
     * pausing the later segments of the others while it runs) */
    for (int round = 0; round < 2; round++) {
        p = tiny_pipeline_ex(2, 2048, 0, round ? 3 : -1);
        if (!p) break;
        koe_job *jobs[3];
        for (int i = 0; i < 3; i++) {
            koe_speech_request r = req(texts[i], voices[i], KOE_FORMAT_PCM, 11 + (uint64_t)i);
            jobs[i] = koe_pipeline_submit(p, &r, &err);
            KT_CHECK(jobs[i], "submit %d: %s", i, err.msg);
        }
        int open = 3;
        int ended[3] = {!jobs[0], !jobs[1], !jobs[2]};
        open -= ended[0] + ended[1] + ended[2];
        char piece[333];
        while (open > 0) {
            for (int i = 0; i < 3; i++) {
                if (ended[i]) continue;
                /* a short wait: a job still queued must not slow the others' reads */
                ssize_t n = koe_job_read(jobs[i], piece, sizeof piece, 5, &err);
                if (n > 0) koe_buf_append(&together[i], piece, (size_t)n);
                if (n == 0 || n == -1) {
                    KT_CHECK(n == 0, "job %d failed: %s", i, err.msg);
                    ended[i] = 1;
                    open--;
                }
            }
        }
        for (int i = 0; i < 3; i++) {
            KT_CHECK(alone[i].len > 0 && alone[i].len == together[i].len &&
                         !memcmp(alone[i].data, together[i].data, alone[i].len),
                     "job %d, %s express workers: %zu bytes alone, %zu together", i,
                     round ? "three" : "no", alone[i].len, together[i].len);
            koe_job_release(jobs[i]);
            koe_buf_free(&together[i]);
        }
        koe_pipeline_free(p);
    }
    for (int i = 0; i < 3; i++) koe_buf_free(&alone[i]);
}

static int one_cancelled(const koe_pipeline_stats *s) {
    return s->jobs_cancelled >= 1 && s->running == 0;
}

static void test_cancel_reaches_reader(void) {
    koe_pipeline *p = espeak_pipeline(1, 0, 4096);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r = req(story, "af_heart", KOE_FORMAT_PCM, 0);
    koe_job *j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j, "submit: %s", err.msg);
    if (!j) {
        koe_pipeline_free(p);
        return;
    }
    char buf[1000];
    ssize_t n;
    do n = koe_job_read(j, buf, sizeof buf, 1000, &err);
    while (n == -2);
    KT_CHECK(n > 0, "first bytes before the cancel (%zd)", n);
    koe_job_cancel(j);
    /* What was buffered may still come out; then the reader is told, never a clean end. */
    do n = koe_job_read(j, buf, sizeof buf, 1000, &err);
    while (n > 0 || n == -2);
    KT_CHECK(n == -1 && err.code == KOE_ERR_CANCELLED, "after cancel: %zd (%s)", n, err.msg);
    KT_CHECK(wait_stats(p, one_cancelled), "the worker counted the job as cancelled");
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_EXPECT(s.jobs_done == 0 && s.jobs_failed == 0);
    koe_job_release(j);
    koe_pipeline_free(p);
}

static int one_running(const koe_pipeline_stats *s) {
    return s->running >= 1;
}

/* One worker, room for one more: an unread job and a second one fill it, the third is refused
 * with KOE_ERR_LIMIT; once the first goes, the second runs to its end. */
static void test_queue_full(void) {
    koe_pipeline *p = espeak_pipeline(1, 1, 4096);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r = req(story, "af_heart", KOE_FORMAT_PCM, 0);
    koe_job *a = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(a && wait_stats(p, one_running), "the first job runs: %s", err.msg);
    koe_speech_request shortr = req("Short and sweet.", "af_heart", KOE_FORMAT_WAV, 0);
    koe_job *b = koe_pipeline_submit(p, &shortr, &err);
    KT_CHECK(b, "the second waits: %s", err.msg);
    err = (koe_error){0};
    koe_job *c = koe_pipeline_submit(p, &shortr, &err);
    KT_CHECK(!c && err.code == KOE_ERR_LIMIT && strstr(err.msg, "queue"), "the third: %s", err.msg);
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_CHECK(s.queued + s.running == 2 && s.jobs_rejected == 1,
             "queued %d running %d rejected %llu", s.queued, s.running,
             (unsigned long long)s.jobs_rejected);
    koe_job_release(c);
    koe_job_release(a); /* the client went away */
    if (b) {
        koe_buf out = {0};
        KT_CHECK(read_all(b, 4096, &out, &err) == 0 && out.len > 44, "the waiting job ran: %s",
                 err.msg);
        koe_buf_free(&out);
        koe_job_release(b);
    }
    koe_pipeline_free(p);
}

/* A job cancelled at once (queued or just started) frees its place at once and its reader is
 * told, while the other job goes on. */
static void test_cancel_while_queued(void) {
    koe_pipeline *p = espeak_pipeline(1, 1, 4096);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r = req(story, "af_heart", KOE_FORMAT_PCM, 0);
    koe_job *a = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(a && wait_stats(p, one_running), "the first job runs: %s", err.msg);
    koe_job *b = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(b, "the second waits: %s", err.msg);
    koe_job_cancel(b);
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_CHECK(s.queued == 0 && s.running == 1 && s.jobs_cancelled == 1,
             "after the cancel: queued %d running %d cancelled %llu", s.queued, s.running,
             (unsigned long long)s.jobs_cancelled);
    char buf[64];
    err = (koe_error){0};
    KT_CHECK(b && koe_job_read(b, buf, sizeof buf, 1000, &err) == -1 &&
                 err.code == KOE_ERR_CANCELLED,
             "its reader is told: %s", err.msg);
    koe_job *c = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(c, "its place is free: %s", err.msg);
    koe_job_release(b); /* after a cancel, release must not count or free twice */
    koe_job_release(c);
    koe_job_release(a);
    koe_pipeline_free(p);
}

/* Freeing while a caller still holds a running, unread job and a queued one: no hang, and the
 * held jobs then read as cancelled. */
static void test_free_with_held_jobs(void) {
    koe_pipeline *p = espeak_pipeline(1, 0, 4096);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r = req(story, "af_heart", KOE_FORMAT_MP3, 0);
    koe_job *a = koe_pipeline_submit(p, &r, &err);
    koe_job *b = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(a && b && wait_stats(p, one_running), "two jobs in: %s", err.msg);
    koe_pipeline_free(p);
    koe_buf out = {0};
    err = (koe_error){0};
    KT_CHECK(a && read_all(a, 4096, &out, &err) == -1 && err.code == KOE_ERR_CANCELLED,
             "running job cancelled: %s", err.msg);
    err = (koe_error){0};
    KT_CHECK(b && read_all(b, 4096, &out, &err) == -1 && err.code == KOE_ERR_CANCELLED,
             "queued job cancelled: %s", err.msg);
    koe_buf_free(&out);
    koe_job_release(a);
    koe_job_release(b);
}

static const char *const many_segments =
    "One. Two, and three. Four! Five, six, seven. Eight? Nine and ten. Eleven, twelve. "
    "Thirteen; fourteen. Fifteen, sixteen, and seventeen. Eighteen. The end.";

static koe_pipeline *tiny_pipeline_la(int workers, int lookahead) {
    return tiny_pipeline_with(workers, 1000, lookahead);
}

/* Segments synthesized on three workers at once, out of order, come out in order: the same
 * bytes as one worker gives. */
static void test_order_across_workers(void) {
    if (!have_tiny) return;
    koe_buf one = {0}, three = {0};
    koe_error err = {0};
    koe_speech_request r = req(many_segments, "af_bella", KOE_FORMAT_WAV, 5);
    koe_pipeline *p = tiny_pipeline_la(1, 1);
    if (!p) return;
    koe_job *j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j && read_all(j, 4096, &one, &err) == 0, "one worker: %s", err.msg);
    koe_job_times t1 = {0};
    if (j) koe_job_get_times(j, &t1);
    koe_job_release(j);
    koe_pipeline_free(p);
    p = tiny_pipeline_la(3, 6);
    if (!p) return;
    j = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(j && read_all(j, 97, &three, &err) == 0, "three workers: %s", err.msg);
    koe_job_release(j);
    koe_pipeline_free(p);
    KT_CHECK(t1.segments >= 8, "%d segments", t1.segments);
    KT_CHECK(one.len > 44 && one.len == three.len && !memcmp(one.data, three.data, one.len),
             "same bytes: %zu vs %zu", one.len, three.len);
    /* joins: every segment fades in and out, so the stream starts and ends on silence */
    if (one.len > 48) {
        const unsigned char *d = (const unsigned char *)one.data;
        int first = (int16_t)(d[44] | d[45] << 8),
            last = (int16_t)(d[one.len - 2] | d[one.len - 1] << 8);
        KT_CHECK(first == 0 && last == 0, "first sample %d, last %d", first, last);
    }
    koe_buf_free(&one);
    koe_buf_free(&three);
}

static int idle(const koe_pipeline_stats *s) {
    return s->segments_running == 0;
}

/* A job nobody reads stops `lookahead` segments ahead (bounded memory), and does not hold up
 * another job on the same single worker. */
static void test_lookahead_bound(void) {
    if (!have_tiny) return;
    koe_pipeline *p = tiny_pipeline_la(1, 2);
    if (!p) return;
    koe_error err = {0};
    koe_speech_request r = req(many_segments, "af_bella", KOE_FORMAT_PCM, 3);
    r.realtime = 1; /* a stream: its late segments count (the other job's never do) */
    koe_job *a = koe_pipeline_submit(p, &r, &err);
    KT_CHECK(a, "submit: %s", err.msg);
    koe_job_times t = {0};
    for (int i = 0; a && i < 6000 && t.segments_done < 2; i++) {
        koe_job_get_times(a, &t);
        usleep(10000);
    }
    KT_CHECK(wait_stats(p, idle), "the worker goes idle");
    if (a) koe_job_get_times(a, &t);
    koe_pipeline_stats s;
    koe_pipeline_get_stats(p, &s);
    KT_CHECK(t.segments >= 8 && t.segments_done == 2 && s.segments_ready == 2,
             "unread: %d of %d segments done, %d ready", t.segments_done, t.segments,
             s.segments_ready);
    koe_speech_request rb =
        req("Another listener, served meanwhile.", "am_adam", KOE_FORMAT_WAV, 4);
    koe_job *b = koe_pipeline_submit(p, &rb, &err);
    koe_buf out = {0};
    KT_CHECK(b && read_all(b, 4096, &out, &err) == 0 && out.len > 44, "the other job ends: %s",
             err.msg);
    koe_buf_free(&out);
    koe_job_times tb = {0};
    if (b) koe_job_get_times(b, &tb);
    koe_job_release(b);
    /* reading the first resumes it, to its end */
    KT_CHECK(a && read_all(a, 4096, &out, &err) == 0, "the unread job resumes: %s", err.msg);
    if (a) koe_job_get_times(a, &t);
    KT_CHECK(t.segments_done == t.segments, "%d of %d", t.segments_done, t.segments);
    koe_buf_free(&out);
    koe_job_release(a);
    koe_pipeline_get_stats(p, &s);
    /* the server's underrun counter is the sum of its jobs' */
    KT_CHECK(s.late_segments == (uint64_t)(t.late_segments + tb.late_segments) &&
                 t.late_segments >= 0 && t.late_segments < t.segments && tb.late_segments == 0,
             "late segments %llu = %d + %d", (unsigned long long)s.late_segments, t.late_segments,
             tb.late_segments);
    KT_CHECK(s.segments_ready == 0 && s.running == 0 && s.jobs_done == 2,
             "ready %d running %d done %llu", s.segments_ready, s.running,
             (unsigned long long)s.jobs_done);
    koe_pipeline_free(p);
}

/* The optimizer, on the fast espeak-ng backend and a 10 s target, raises the first-segment length
 * toward its target, records the decision with a reason and applies it; switched off, it decides
 * nothing. */
static void test_optimizer(void) {
    for (int on = 1; on >= 0; on--) {
        koe_pipeline_opts o = {.workers = 1,
                               .data_dir = kt_env("KOE_DATA_DIR", "data"),
                               .optimize = on,
                               .optimize_period_ms = 20,
                               .ttfa_target =
                                   10.0}; /* far above any espeak-ng TTFA, even under load */
        koe_error err = {0};
        koe_pipeline *p = koe_pipeline_new(&o, &err);
        KT_CHECK(p, "pipeline: %s", err.msg);
        if (!p) return;
        koe_pipeline_decision d[16];
        int nd = 0;
        for (int i = 0; i < 40 && nd == 0; i++) {
            koe_speech_request r = req("A short request, then a longer clause follows it.",
                                       "af_heart", KOE_FORMAT_PCM, 0);
            koe_job *j = koe_pipeline_submit(p, &r, &err);
            koe_buf out = {0};
            KT_CHECK(j && read_all(j, 4096, &out, &err) == 0, "request %d: %s", i, err.msg);
            koe_buf_free(&out);
            koe_job_release(j);
            if (i >= 9) usleep(50000); /* a few periods of the optimizer */
            nd = koe_pipeline_get_decisions(p, d, 16);
        }
        koe_pipeline_opts now;
        koe_pipeline_get_opts(p, &now);
        if (on)
            KT_CHECK(nd >= 1 && d[0].first_segment_max_from == 32 &&
                         d[0].first_segment_max_to > 32 && d[0].reason[0] &&
                         now.first_segment_max == d[nd - 1].first_segment_max_to,
                     "%d decisions, 32 -> %d (%s), now %d", nd, nd ? d[0].first_segment_max_to : 0,
                     nd ? d[0].reason : "", now.first_segment_max);
        else
            KT_CHECK(nd == 0 && now.first_segment_max == 32, "off: %d decisions, now %d", nd,
                     now.first_segment_max);
        koe_pipeline_free(p);
    }
}

static int one_queued(const koe_pipeline_stats *s) {
    return s->queued == 1;
}

/* With max_active 1, a second request waits for its first task until the first request has
 * nothing left to synthesize, then runs to its end. */
static void test_max_active(void) {
    if (!have_tiny) return;
    koe_pipeline_opts o = {.workers = 2,
                           .threads = 1,
                           .max_active = 1,
                           .lookahead = 2,
                           .data_dir = kt_env("KOE_DATA_DIR", "data"),
                           .model_path = tiny_pth,
                           .config_path = tiny_cfg};
    koe_error err = {0};
    koe_pipeline *p = koe_pipeline_new(&o, &err);
    KT_CHECK(p, "pipeline: %s", err.msg);
    if (!p) return;
    koe_speech_request ra = req(many_segments, "af_bella", KOE_FORMAT_PCM, 1);
    koe_speech_request rb = req("Wait for your turn.", "am_adam", KOE_FORMAT_PCM, 2);
    koe_job *a = koe_pipeline_submit(p, &ra, &err);
    KT_CHECK(a && wait_stats(p, one_running), "the first runs: %s", err.msg);
    koe_job *b = koe_pipeline_submit(p, &rb, &err);
    KT_CHECK(b && wait_stats(p, idle) && wait_stats(p, one_queued),
             "the second waits while the first, unread, holds its turn");
    koe_buf out = {0};
    KT_CHECK(a && read_all(a, 4096, &out, &err) == 0, "first: %s", err.msg);
    KT_CHECK(b && read_all(b, 4096, &out, &err) == 0, "second: %s", err.msg);
    koe_job_times ta = {0}, tb = {0};
    if (a) koe_job_get_times(a, &ta);
    if (b) koe_job_get_times(b, &tb);
    KT_CHECK(tb.queue_wait > ta.first_synth,
             "second started at %.3f s, first's first segment at %.3f", tb.queue_wait,
             ta.first_synth);
    koe_buf_free(&out);
    koe_job_release(a);
    koe_job_release(b);
    koe_pipeline_free(p);
}

int main(void) {
    const char *data = kt_env("KOE_DATA_DIR", "data");
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    struct stat st;
    snprintf(voices_dir, sizeof voices_dir, "%s/voices/af_bella.bin", data);
    have_voices = stat(voices_dir, &st) == 0;
    snprintf(tiny_pth, sizeof tiny_pth, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(tiny_cfg, sizeof tiny_cfg, "%s/kokoro-tiny/kokoro-tiny-seed1.config.json", td);
    have_tiny = have_voices && stat(tiny_pth, &st) == 0 && stat(tiny_cfg, &st) == 0;
    if (!have_tiny) fprintf(stderr, "note: no voices or tiny weights; Kokoro cases skipped\n");
    kt_run("refusals", test_refusals);
    kt_run("espeak job completes", test_espeak_job_completes);
    kt_run("back-pressure exact", test_backpressure_exact);
    kt_run("concurrent jobs isolated", test_concurrent_jobs_isolated);
    kt_run("order across workers", test_order_across_workers);
    kt_run("lookahead bound", test_lookahead_bound);
    kt_run("optimizer", test_optimizer);
    kt_run("max active", test_max_active);
    kt_run("cancel reaches the reader", test_cancel_reaches_reader);
    kt_run("queue full", test_queue_full);
    kt_run("cancel while queued", test_cancel_while_queued);
    kt_run("free with held jobs", test_free_with_held_jobs);
    return kt_finish();
}
