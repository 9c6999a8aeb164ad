/* The decoder on its own, from each reference case's inputs (asr, F0_pred, N_pred, ref_s): every
 * block's output (dec_encode, dec_decode0..3, gen_input) against the reference at the README's
 * 1e-4; then the generator on the decoder's own output (har_source, har_spec within 2e-3) and
 * from the reference gen_input + har_spec/har_phase (conv_post, audio within 1e-4). Also: a
 * missing or mis-shaped decoder tensor is an error that names it. */
#include "harness.h"
#include "koe/model.h"
#include "koe/weights.h"
#include "model/decoder.h"
#include "model/generator.h"
#include "model/pool.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static koe_weights *weights;

typedef struct ref {
    float *data;
    size_t n;
    int64_t shape[4];
    int ndim;
} ref;

/* Reads one f32 tensor of a case through its meta.json entry (shape and file). */
static int ref_read(const char *dir, cJSON *tensors, const char *name, ref *r) {
    memset(r, 0, sizeof *r);
    cJSON *t = cJSON_GetObjectItem(tensors, name);
    cJSON *file = cJSON_GetObjectItem(t, "file"), *shape = cJSON_GetObjectItem(t, "shape");
    if (!cJSON_IsString(file) || !cJSON_IsArray(shape)) return -1;
    size_t n = 1;
    cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (r->ndim == 4 || !cJSON_IsNumber(d) || d->valuedouble < 1) return -1;
        r->shape[r->ndim++] = (int64_t)d->valuedouble;
        n *= (size_t)d->valuedouble;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file->valuestring);
    size_t len = 0;
    r->data = kt_read_file(path, &len);
    if (!r->data || len != n * sizeof(float)) {
        free(r->data);
        r->data = NULL;
        return -1;
    }
    r->n = n;
    return 0;
}

/* Max |got - want| relative to the reference's max |value|. */
static double rel_err(const float *got, const float *want, size_t n) {
    double mabs = 0, ref_max = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= mabs)) mabs = e; /* NaN propagates as a failure */
        if (fabs(want[i]) > ref_max) ref_max = fabs(want[i]);
    }
    return mabs / (ref_max > 0 ? ref_max : 1);
}

/* The tap compares each stage it sees with the case's tensor of that name, if the test asks. */
typedef struct tap_state {
    const char *dir, *case_name;
    cJSON *tensors;
    const char *const *names;
    const double *tols;
    int n_names, seen[16];
} tap_state;

static void on_stage(void *user, const char *stage, const float *data, int ndim,
                     const int64_t *shape) {
    tap_state *s = user;
    for (int i = 0; i < s->n_names; i++) {
        /* light cases carry no sample-rate tensors: nothing to compare */
        if (strcmp(stage, s->names[i]) || !cJSON_GetObjectItem(s->tensors, stage)) continue;
        ref r;
        if (ref_read(s->dir, s->tensors, stage, &r)) {
            KT_CHECK(0, "%s: cannot read the reference %s", s->case_name, stage);
            return;
        }
        size_t n = 1;
        for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
        KT_CHECK(n == r.n, "%s: %s has %zu values, the reference %zu", s->case_name, stage, n, r.n);
        if (n == r.n) {
            double e = rel_err(data, r.data, n);
            KT_CHECK(e <= s->tols[i], "%s: %s rel error %.3g > %.0e", s->case_name, stage, e,
                     s->tols[i]);
            s->seen[i]++;
        }
        free(r.data);
    }
}

static void check_case(const char *dir, const char *name, koe_decoder *dec, koe_generator *gen,
                       koe_pool *pool) {
    size_t len;
    char path[2100];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    char *text = kt_read_file(path, &len);
    cJSON *meta = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    cJSON *tensors = cJSON_GetObjectItem(meta, "tensors");
    KT_CHECK(tensors != NULL, "%s: meta.json", name);
    ref asr, f0, nn, rs, gin, hspec, hphase;
    int ok = tensors && !ref_read(dir, tensors, "asr", &asr) &&
             !ref_read(dir, tensors, "F0_pred", &f0) && !ref_read(dir, tensors, "N_pred", &nn) &&
             !ref_read(dir, tensors, "ref_s", &rs) && !ref_read(dir, tensors, "gen_input", &gin);
    KT_CHECK(ok, "%s: decoder inputs readable", name);
    if (!ok) {
        cJSON_Delete(meta);
        return;
    }
    int F = (int)asr.shape[2], W2 = koe_decoder_out_width(dec);
    KT_CHECK(f0.n == 2 * (size_t)F && nn.n == 2 * (size_t)F && rs.n == 256 &&
                 gin.n == (size_t)W2 * 2 * (size_t)F,
             "%s: shapes agree (F=%d)", name, F);
    if (f0.n != 2 * (size_t)F || nn.n != 2 * (size_t)F || rs.n != 256 ||
        gin.n != (size_t)W2 * 2 * (size_t)F)
        goto done;

    /* 1. the decoder from the reference inputs */
    static const char *const dnames[] = {"dec_encode",  "dec_decode0", "dec_decode1",
                                         "dec_decode2", "dec_decode3", "gen_input"};
    static const double dtols[] = {1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4};
    tap_state ts = {dir, name, tensors, dnames, dtols, 6, {0}};
    koe_stage_tap tap = {on_stage, &ts};
    size_t S = (size_t)koe_generator_samples(2 * F);
    size_t scr = koe_decoder_scratch_floats(dec, F, pool);
    size_t gscr = koe_generator_scratch_floats(gen, 2 * F, pool);
    float *scratch = malloc((scr > gscr ? scr : gscr) * sizeof *scratch);
    float *out = malloc((size_t)W2 * 2 * F * sizeof *out), *audio = malloc(S * sizeof *audio);
    koe_error err = {0};
    int rc = koe_decoder_run(dec, pool, scratch, asr.data, F, f0.data, nn.data, rs.data, &tap, NULL,
                             out, &err);
    KT_CHECK(rc == 0, "%s: decoder run: %s", name, err.msg);
    for (int i = 0; i < 6; i++) KT_CHECK(ts.seen[i] == 1, "%s: %s tapped once", name, dnames[i]);
    double e_out = rel_err(out, gin.data, gin.n);
    KT_CHECK(e_out <= 1e-4, "%s: decoder output vs gen_input %.3g", name, e_out);

    /* 2. the generator on the decoder's own output in the test noise mode: the harmonic source
     * depends on F0 alone, so it is checked at the README's tolerance; the audio end to end is
     * information only (README). */
    static const char *const gnames[] = {"har_source", "har_spec"};
    static const double gtols[] = {2e-3, 2e-3};
    tap_state gs = {dir, name, tensors, gnames, gtols, 2, {0}};
    koe_stage_tap gtap = {on_stage, &gs};
    koe_noise noise = {KOE_NOISE_TEST, 0};
    rc = koe_generator_run(gen, pool, scratch, out, 2 * F, f0.data, rs.data, noise, &gtap, NULL,
                           audio, &err);
    KT_CHECK(rc == 0, "%s: generator run: %s", name, err.msg);
    int has_har = cJSON_GetObjectItem(tensors, "har_spec") != NULL;
    if (has_har) {
        KT_CHECK(gs.seen[0] == 1 && gs.seen[1] == 1, "%s: harmonic source compared", name);
        ref a;
        if (!ref_read(dir, tensors, "audio", &a)) {
            double sig = 0, noi = 0;
            size_t n = a.n < S ? a.n : S;
            for (size_t i = 0; i < n; i++) {
                sig += (double)a.data[i] * a.data[i];
                noi += ((double)audio[i] - a.data[i]) * ((double)audio[i] - a.data[i]);
            }
            printf("  %s: F=%d, end-to-end audio SNR %.1f dB (information only)\n", name, F,
                   10 * log10(sig / (noi > 0 ? noi : 1e-30)));
            free(a.data);
        }
    }

    /* 3. the generator from the reference gen_input and harmonic STFT */
    if (has_har && !ref_read(dir, tensors, "har_spec", &hspec)) {
        if (!ref_read(dir, tensors, "har_phase", &hphase)) {
            static const char *const pnames[] = {"conv_post", "audio"};
            static const double ptols[] = {1e-4, 1e-4};
            tap_state ps = {dir, name, tensors, pnames, ptols, 2, {0}};
            koe_stage_tap ptap = {on_stage, &ps};
            rc = koe_generator_run_from_har(gen, pool, scratch, gin.data, 2 * F, hspec.data,
                                            hphase.data, rs.data, &ptap, NULL, audio, &err);
            KT_CHECK(rc == 0, "%s: generator from har: %s", name, err.msg);
            KT_CHECK(ps.seen[0] == 1 && ps.seen[1] == 1, "%s: conv_post and audio compared", name);
            free(hphase.data);
        }
        free(hspec.data);
    }
    free(scratch);
    free(out);
    free(audio);
done:
    free(asr.data);
    free(f0.data);
    free(nn.data);
    free(rs.data);
    free(gin.data);
    cJSON_Delete(meta);
}

static int H_of_model(void) {
    /* hidden_dim: the text encoder's width = asr_res input channels */
    const koe_tensor *t = koe_weights_find(weights, "decoder.asr_res.0.weight_v");
    return t ? (int)t->shape[1] : -1;
}

static void check_root(const char *root, int required) {
    DIR *d = opendir(root);
    if (!d) {
        KT_CHECK(!required, "cannot open %s", root);
        printf("  (no %s)\n", root);
        return;
    }
    koe_error err = {0};
    koe_decoder *dec = koe_decoder_new(koe_weights_lookup, weights, H_of_model(), 128, &err);
    KT_CHECK(dec != NULL, "decoder: %s", err.msg);
    koe_generator *gen = koe_generator_new_lookup(koe_weights_lookup, weights, &err);
    KT_CHECK(gen != NULL, "generator: %s", err.msg);
    koe_pool *pool = koe_pool_new(2, &err);
    KT_CHECK(pool != NULL, "pool: %s", err.msg);
    int cases = 0;
    struct dirent *e;
    while (dec && gen && pool && (e = readdir(d))) {
        if (strncmp(e->d_name, "case", 4)) continue;
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        check_case(dir, e->d_name, dec, gen, pool);
        cases++;
    }
    closedir(d);
    KT_CHECK(cases > 0 || !required, "cases in %s", root);
    koe_pool_free(pool);
    koe_generator_free(gen);
    koe_decoder_free(dec);
}

static void test_committed_cases(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s/kokoro-tiny", kt_env("KOE_TEST_DATA", "tests/data"));
    check_root(root, 1);
}

static void test_shared_cases(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s/kokoro-tiny",
             kt_env("KOE_SHARED_VECTORS", "../shared/vectors"));
    check_root(root, 0);
}

/* A lookup that hides one tensor or reports a wrong shape for it. */
typedef struct doctor {
    const char *name;
    int hide;
} doctor;

static const float *doctored(void *user, const char *name, int *ndim, int64_t shape[4]) {
    doctor *dr = user;
    if (!strcmp(name, dr->name) && dr->hide) return NULL;
    const float *p = koe_weights_lookup(weights, name, ndim, shape);
    if (p && !strcmp(name, dr->name)) shape[*ndim - 1] += 1;
    return p;
}

static void test_bad_tensors(void) {
    static const char *const names[] = {
        "decoder.F0_conv.weight_v", "decoder.asr_res.0.bias", "decoder.encode.norm1.fc.weight",
        "decoder.decode.3.pool.weight_g", "decoder.decode.2.conv2.weight_v"};
    for (int i = 0; i < 5; i++)
        for (int hide = 0; hide < 2; hide++) {
            if (!koe_weights_find(weights, names[i])) {
                KT_CHECK(0, "the tiny weights hold %s", names[i]);
                continue;
            }
            doctor dr = {names[i], hide};
            koe_error err = {0};
            koe_decoder *dec = koe_decoder_new(doctored, &dr, H_of_model(), 128, &err);
            KT_CHECK(dec == NULL && err.code != 0 && strstr(err.msg, names[i]),
                     "%s %s: error names it (got \"%s\")", names[i], hide ? "missing" : "misshaped",
                     err.msg);
            koe_decoder_free(dec);
        }
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/kokoro-tiny/kokoro-tiny-seed1.pth",
             kt_env("KOE_TEST_DATA", "tests/data"));
    koe_error err = {0};
    weights = koe_weights_open(path, &err);
    if (!weights) {
        KT_CHECK(0, "open %s: %s", path, err.msg);
        return kt_finish();
    }
    kt_run("committed cases", test_committed_cases);
    kt_run("shared cases", test_shared_cases);
    kt_run("missing or mis-shaped tensors", test_bad_tensors);
    koe_weights_close(weights);
    return kt_finish();
}
