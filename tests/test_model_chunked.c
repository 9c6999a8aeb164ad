/* The chunked vocoder (koe_synthesize_chunked) on the committed tiny weights: with a lookahead
 * or window covering the segment it gives koe_synthesize's output; windows arrive in order, are
 * contiguous and add up to the exact output's length; windows flagged exact are; the schedule
 * follows W, L and growth; bad options, the callback's stop and cancellation. Deviation from the
 * exact output (max abs, SNR, log-spectral distance) is computed and printed for a few (W, L) on
 * the committed reference cases; bench/bench_chunked measures it on full-size weights. Also the
 * comparison metrics themselves on signals with a known answer. */
#include "harness.h"
#include "koe/audio.h"
#include "koe/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static koe_model *model;

/* One input: token ids, style and speed (a reference case's, or a fixed one). */
typedef struct input {
    char name[64];
    int32_t ids[KOE_MODEL_MAX_TOKENS];
    int n;
    float style[256];
    float speed;
} input;

static int load_case(const char *dir, const char *name, input *in) {
    char path[2048];
    snprintf(in->name, sizeof in->name, "%s", name);
    const char *sp = strstr(name, "_speed");
    in->speed = sp ? strtof(sp + 6, NULL) : 1.0f;
    snprintf(path, sizeof path, "%s/%s/input_ids.i64", dir, name);
    size_t len = 0;
    int64_t *ids = kt_read_file(path, &len);
    snprintf(path, sizeof path, "%s/%s/ref_s.f32", dir, name);
    size_t slen = 0;
    float *s = kt_read_file(path, &slen);
    int ok = ids && s && len % 8 == 0 && len / 8 >= 3 && len / 8 <= KOE_MODEL_MAX_TOKENS &&
             slen == sizeof in->style;
    if (ok) {
        in->n = (int)(len / 8);
        for (int i = 0; i < in->n; i++) in->ids[i] = (int32_t)ids[i];
        memcpy(in->style, s, sizeof in->style);
    }
    free(ids), free(s);
    return ok;
}

static void fixed_input(input *in) {
    static const int32_t ids[] = {0, 50, 83, 156, 43, 102, 16, 61, 123, 54, 0};
    snprintf(in->name, sizeof in->name, "fixed T11");
    in->n = (int)(sizeof ids / sizeof ids[0]);
    memcpy(in->ids, ids, sizeof ids);
    for (int i = 0; i < 256; i++) in->style[i] = 0.1f * sinf((float)i);
    in->speed = 1.0f;
}

/* The exact output of an input (malloc'd copy). */
static float *exact(koe_ctx *c, const input *in, koe_noise noise, int64_t *n, int *F) {
    koe_error err = {0};
    koe_synth_out out;
    int rc = koe_synthesize(c, in->ids, in->n, in->style, in->speed, noise, NULL, NULL, &out, &err);
    KT_CHECK(rc == 0, "%s: %s", in->name, err.msg);
    if (rc) return NULL;
    float *a = malloc((size_t)out.n_samples * sizeof *a);
    memcpy(a, out.audio, (size_t)out.n_samples * sizeof *a);
    *n = out.n_samples;
    *F = out.frames;
    return a;
}

/* What the callback saw: every window copied where its offset says, and its bookkeeping. */
#define MAXW 4096
typedef struct seen {
    float *audio; /* 600·F */
    int64_t cap;
    int n, in_order, contiguous, sizes_ok, indices_ok;
    int64_t next;
    koe_chunk w[MAXW];
    int stop_after; /* stop (return 1) after this many windows; 0 = never */
} seen;

static int on_window(void *user, const koe_chunk *ch) {
    seen *s = user;
    s->in_order &= ch->seconds >= (s->n ? s->w[s->n - 1].seconds : 0);
    s->contiguous &= ch->offset == s->next && ch->offset == 600 * (int64_t)ch->frame_start;
    s->sizes_ok &= ch->n_samples == 600 * (int64_t)(ch->frame_end - ch->frame_start) &&
                   ch->n_samples > 0 && ch->prefix_frames >= ch->frame_end;
    s->indices_ok &= ch->index == s->n;
    if (ch->offset >= 0 && ch->offset + ch->n_samples <= s->cap)
        memcpy(s->audio + ch->offset, ch->audio, (size_t)ch->n_samples * sizeof *ch->audio);
    s->next = ch->offset + ch->n_samples;
    if (s->n < MAXW) s->w[s->n] = *ch;
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Runs the chunked path; checks the windows' bookkeeping, that the callback's copy is the
 * returned concatenation, and that windows flagged exact equal ref. Returns the concatenation
 * (malloc'd) or NULL. */
static float *chunked(koe_ctx *c, const input *in, koe_noise noise, koe_chunk_opts o,
                      const float *ref, int64_t n_ref, int F, seen *s) {
    koe_error err = {0};
    koe_synth_out out;
    memset(s, 0, sizeof *s);
    s->in_order = s->contiguous = s->sizes_ok = s->indices_ok = 1;
    s->cap = n_ref;
    s->audio = calloc((size_t)n_ref, sizeof *s->audio);
    int rc = koe_synthesize_chunked(c, in->ids, in->n, in->style, in->speed, noise, &o, on_window,
                                    s, NULL, NULL, &out, &err);
    KT_CHECK(rc == 0, "%s W=%d L=%d: %s", in->name, o.window, o.lookahead, err.msg);
    if (rc) {
        free(s->audio);
        return NULL;
    }
    KT_CHECK(out.n_samples == n_ref && out.frames == F && s->next == n_ref,
             "%s W=%d L=%d: %lld samples (exact %lld), windows end at %lld", in->name, o.window,
             o.lookahead, (long long)out.n_samples, (long long)n_ref, (long long)s->next);
    KT_CHECK(s->in_order && s->contiguous && s->sizes_ok && s->indices_ok,
             "%s W=%d L=%d: windows in order %d, contiguous %d, sizes %d, indices %d", in->name,
             o.window, o.lookahead, s->in_order, s->contiguous, s->sizes_ok, s->indices_ok);
    KT_CHECK(s->n >= 1 && s->w[s->n - 1 < MAXW ? s->n - 1 : MAXW - 1].exact,
             "%s: the last window comes from the run over all frames", in->name);
    if (out.n_samples == n_ref)
        KT_CHECK(!memcmp(s->audio, out.audio, (size_t)n_ref * sizeof *s->audio),
                 "%s: out->audio is the windows' concatenation", in->name);
    double tol = 1e-5 * fmax(max_abs(ref, n_ref), 1e-3);
    for (int k = 0; k < s->n && k < MAXW; k++)
        if (s->w[k].exact)
            KT_CHECK(max_diff(ref + s->w[k].offset, s->audio + s->w[k].offset, s->w[k].n_samples) <=
                         tol,
                     "%s W=%d L=%d: window %d (exact) equals the exact output", in->name, o.window,
                     o.lookahead, k);
    return s->audio;
}

/* Lookahead or window covering the segment: the exact output, within the float tolerance the
 * engine's tests use between contexts (1e-5 of the peak; the same context and thread count give
 * the same bits, which is also reported). */
static void check_covering(koe_ctx *c, const input *in) {
    koe_noise noise = {KOE_NOISE_TEST, 0};
    int64_t n;
    int F;
    float *ref = exact(c, in, noise, &n, &F);
    if (!ref) return;
    double tol = 1e-5 * fmax(max_abs(ref, n), 1e-3);
    koe_chunk_opts cases[] = {{.window = 4, .lookahead = F},
                              {.window = 1, .lookahead = F - 1},
                              {.window = F, .lookahead = 0},
                              {.window = F + 100, .lookahead = 3},
                              {.window = 3, .lookahead = F, .growth = 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seen s;
        float *a = chunked(c, in, noise, cases[i], ref, n, F, &s);
        if (!a) continue;
        double d = max_diff(ref, a, n);
        KT_CHECK(d <= tol && s.n == 1,
                 "%s F=%d W=%d L=%d: max diff %g (tol %g), %d window(s), one expected", in->name, F,
                 cases[i].window, cases[i].lookahead, d, tol, s.n);
        printf("  %s F=%d W=%d L=%d: equal to exact (%s)\n", in->name, F, cases[i].window,
               cases[i].lookahead,
               memcmp(ref, a, (size_t)n * sizeof *a) ? "within 1e-5" : "bitwise");
        free(a);
    }
    free(ref);
}

static void test_covering_fixed(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 2, &err);
    KT_CHECK(c != NULL, "%s", err.msg);
    input in;
    fixed_input(&in);
    if (c) check_covering(c, &in);
    koe_ctx_free(c);
}

static void test_covering_cases(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/kokoro-tiny", kt_env("KOE_TEST_DATA", "tests/data"));
    static const char *const names[] = {"case0_T8_speed1", "case1_T40_speed1"};
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 1, &err);
    KT_CHECK(c != NULL, "%s", err.msg);
    for (int i = 0; c && i < 2; i++) {
        input in;
        KT_CHECK(load_case(dir, names[i], &in), "read %s/%s", dir, names[i]);
        check_covering(c, &in);
    }
    koe_ctx_free(c);
}

/* The schedule: windows W·growth^k from frame 0, each run over min(F, end + L) frames, and the
 * first run that reaches F emits the rest. Worked out here independently of the engine. */
static void test_schedule(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 2, &err);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/kokoro-tiny", kt_env("KOE_TEST_DATA", "tests/data"));
    input in;
    KT_CHECK(load_case(dir, "case1_T40_speed1", &in), "read case1");
    koe_noise noise = {KOE_NOISE_RANDOM, 3};
    int64_t n;
    int F;
    float *ref = c ? exact(c, &in, noise, &n, &F) : NULL;
    if (!ref) {
        koe_ctx_free(c);
        return;
    }
    koe_chunk_opts cases[] = {{.window = 10, .lookahead = 5},
                              {.window = 7, .lookahead = 0, .growth = 2},
                              {.window = 5, .lookahead = 20, .growth = 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        koe_chunk_opts o = cases[i];
        seen s;
        float *a = chunked(c, &in, noise, o, ref, n, F, &s);
        if (!a) continue;
        int k = 0, ok = 1, g = o.growth > 1 ? o.growth : 1;
        long w = o.window;
        for (int st = 0; st < F; k++) {
            int e = st + w < F ? (int)(st + w) : F, P = e + o.lookahead < F ? e + o.lookahead : F;
            if (P == F) e = F;
            ok &= k < s.n && s.w[k].frame_start == st && s.w[k].frame_end == e &&
                  s.w[k].prefix_frames == P && s.w[k].exact == (P == F);
            st = e;
            w *= g;
        }
        KT_CHECK(ok && k == s.n, "F=%d W=%d L=%d growth %d: %d windows as scheduled (got %d)", F,
                 o.window, o.lookahead, o.growth, k, s.n);
        free(a);
    }
    free(ref);
    koe_ctx_free(c);
}

/* Deviation from the exact output for a few (W, L): printed, and checked only for what must
 * hold: finite figures, a real approximation (not the exact output) while the lookahead does not
 * reach the end, and the last window exact (in chunked()). */
static void test_deviation(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/kokoro-tiny", kt_env("KOE_TEST_DATA", "tests/data"));
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 2, &err);
    input in;
    KT_CHECK(c && load_case(dir, "case1_T40_speed1", &in), "context and case1");
    koe_noise noise = {KOE_NOISE_TEST, 0};
    int64_t n;
    int F;
    float *ref = c ? exact(c, &in, noise, &n, &F) : NULL;
    if (!ref) {
        koe_ctx_free(c);
        return;
    }
    static const int wl[][2] = {{10, 0}, {10, 5}, {10, 10}, {20, 10}, {20, 20}, {40, 20}};
    printf("  %s (F=%d): deviation of the chunked output from the exact one\n", in.name, F);
    printf("  | W | L | windows | max abs | SNR dB | LSD dB | first window: max abs | SNR dB |\n");
    for (size_t i = 0; i < sizeof wl / sizeof wl[0]; i++) {
        koe_chunk_opts o = {.window = wl[i][0], .lookahead = wl[i][1]};
        seen s;
        float *a = chunked(c, &in, noise, o, ref, n, F, &s);
        if (!a) continue;
        koe_audio_deviation d, d1;
        koe_audio_compare(ref, a, n, &d);
        koe_audio_compare(ref, a, s.w[0].n_samples, &d1);
        printf("  | %d | %d | %d | %.4g | %.1f | %.2f | %.4g | %.1f |\n", o.window, o.lookahead,
               s.n, d.max_abs, d.snr_db, d.lsd_db, d1.max_abs, d1.snr_db);
        KT_CHECK(isfinite(d.max_abs) && isfinite(d.snr_db) && isfinite(d.lsd_db) &&
                     d.lsd_frames > 0,
                 "W=%d L=%d: finite deviation", o.window, o.lookahead);
        if (o.window + o.lookahead < F)
            KT_CHECK(d.max_abs > 0 && d.lsd_db > 0,
                     "W=%d L=%d: the first window is an approximation (max abs %g)", o.window,
                     o.lookahead, d.max_abs);
        free(a);
    }
    free(ref);
    koe_ctx_free(c);
}

/* The metrics on signals with a known answer. */
static void test_metrics(void) {
    enum { N = 24000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint32_t r = 1;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = 0.3f * sinf(0.05f * (float)i) + 0.1f * ((float)(r >> 8) / 16777216.0f - 0.5f);
        y[i] = 0.5f * x[i];
    }
    koe_audio_deviation d;
    koe_audio_compare(x, x, N, &d);
    KT_CHECK(d.max_abs == 0 && isinf(d.snr_db) && d.lsd_db == 0 &&
                 d.lsd_frames == (N - 512) / 256 + 1,
             "identical: max abs %g, SNR %g, LSD %g over %d frames", d.max_abs, d.snr_db, d.lsd_db,
             d.lsd_frames);
    /* y = x/2: error x/2, so SNR = 10·log10(4) = 6.02 dB; every bin's power is a quarter, so the
     * LSD is 10·log10(4) = 6.02 dB up to the ε floor (1e-10 of the peak: negligible here). */
    koe_audio_compare(x, y, N, &d);
    double want = 10 * log10(4.0);
    KT_CHECK(fabs(d.snr_db - want) < 1e-3 && fabs(d.lsd_db - want) < 0.05 &&
                 fabs(d.max_abs - 0.5 * max_abs(x, N)) < 1e-6,
             "halved: SNR %g, LSD %g (want %g), max abs %g", d.snr_db, d.lsd_db, want, d.max_abs);
    /* A tone against itself a quarter period later (sin vs cos): the error has twice the
     * reference's power, so SNR = -10·log10(2) = -3.01 dB, while the magnitude spectra are the
     * same, so the LSD is ~0 — it ignores phase. The tone sits on bin 20 of the 512-point frames
     * (937.5 Hz), where a Hann-windowed sinusoid has the same three bins whatever its phase. */
    for (int i = 0; i < N; i++) {
        x[i] = (float)sin(2 * M_PI * 937.5 * i / 24000.0); /* double: float's phase error */
        y[i] = (float)cos(2 * M_PI * 937.5 * i / 24000.0); /* would be a -70 dB floor */
    }
    koe_audio_compare(x, y, N, &d);
    KT_CHECK(fabs(d.snr_db + 10 * log10(2.0)) < 0.01 && d.lsd_db < 0.01,
             "quarter-period shift: SNR %g dB, LSD %g dB", d.snr_db, d.lsd_db);
    koe_audio_compare(x, y, 100, &d);
    KT_CHECK(d.lsd_frames == 0 && d.lsd_db == 0, "shorter than a frame: no LSD frames");
    free(x), free(y);
}

static void test_errors(void) {
    koe_error err = {0};
    koe_ctx *c = koe_ctx_new(model, 1, &err);
    input in;
    fixed_input(&in);
    koe_noise noise = {KOE_NOISE_TEST, 0};
    koe_synth_out out;
    static const koe_chunk_opts bad[] = {
        {.window = 0, .lookahead = 2}, {.window = 4, .lookahead = -1}, {.window = 4, .growth = 17}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        KT_CHECK(koe_synthesize_chunked(c, in.ids, in.n, in.style, 1, noise, &bad[i], on_window,
                                        NULL, NULL, NULL, &out, &err) == KOE_ERR_INVALID &&
                     strstr(err.msg, "window"),
                 "bad options %zu: \"%s\"", i, err.msg);
    }
    koe_chunk_opts o = {.window = 2, .lookahead = 1};
    KT_EXPECT(koe_synthesize_chunked(c, in.ids, in.n, in.style, 1, noise, NULL, NULL, NULL, NULL,
                                     NULL, &out, &err) == KOE_ERR_INVALID);
    KT_EXPECT(koe_synthesize_chunked(c, in.ids, 2, in.style, 1, noise, &o, NULL, NULL, NULL, NULL,
                                     &out, &err) == KOE_ERR_INVALID);
    volatile int cancel = 1;
    KT_EXPECT(koe_synthesize_chunked(c, in.ids, in.n, in.style, 1, noise, &o, NULL, NULL, NULL,
                                     &cancel, &out, &err) == KOE_ERR_CANCELLED);
    /* the callback stops the call after two windows; the context then works as before */
    int64_t n;
    int F;
    float *ref = exact(c, &in, noise, &n, &F);
    seen *s = calloc(1, sizeof *s);
    s->stop_after = 2;
    s->cap = n;
    s->audio = calloc((size_t)n, sizeof *s->audio);
    memset(&err, 0, sizeof err);
    int rc = koe_synthesize_chunked(c, in.ids, in.n, in.style, 1, noise, &o, on_window, s, NULL,
                                    NULL, &out, &err);
    KT_CHECK(rc == KOE_ERR_CANCELLED && s->n == 2 && strstr(err.msg, "callback"),
             "stopped by the callback: rc %d after %d windows (\"%s\")", rc, s->n, err.msg);
    /* no callback at all is allowed (out->audio is the result) */
    rc = koe_synthesize_chunked(c, in.ids, in.n, in.style, 1, noise, &o, NULL, NULL, NULL, NULL,
                                &out, &err);
    KT_CHECK(rc == 0 && out.n_samples == n, "no callback: rc %d", rc);
    float *again = ref ? exact(c, &in, noise, &n, &F) : NULL;
    KT_CHECK(ref && again && !memcmp(ref, again, (size_t)n * sizeof *ref),
             "koe_synthesize after chunked calls gives the same audio");
    free(ref), free(again), free(s->audio), free(s);
    koe_ctx_free(c);
}

int main(void) {
    const char *td = kt_env("KOE_TEST_DATA", "tests/data");
    char weights[1024], config[1024];
    snprintf(weights, sizeof weights, "%s/kokoro-tiny/kokoro-tiny-seed1.pth", td);
    snprintf(config, sizeof config, "%s/kokoro-tiny/kokoro-tiny-seed1.config.json", td);
    koe_error err = {0};
    model = koe_model_load(weights, config, &err);
    KT_CHECK(model != NULL, "load %s: %s", weights, err.msg);
    if (!model) return kt_finish();
    kt_run("metrics on known signals", test_metrics);
    kt_run("covering lookahead or window = exact (fixed input)", test_covering_fixed);
    kt_run("covering lookahead or window = exact (reference cases)", test_covering_cases);
    kt_run("window schedule", test_schedule);
    kt_run("deviation figures", test_deviation);
    kt_run("bad options, callback stop, cancellation", test_errors);
    koe_model_free(model);
    return kt_finish();
}
