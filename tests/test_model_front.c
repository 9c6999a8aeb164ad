/* The front half of the Kokoro engine (PL-BERT + bert_encoder, prosody predictor, text encoder,
 * alignment) against the official PyTorch reference vectors: every stage from "bert" to "asr"
 * within 1e-4 of the reference's max |value|, pred_dur exactly equal. Each case runs twice:
 * chained from input_ids alone, and with every part fed the reference's own input (so that a
 * failure names the stage where it starts rather than where it compounds). Plus load errors and
 * bad input.
 *
 * Weights: the vectors' raw blob + manifest (kokoro-tiny-seed1.bin) through a reader local to
 * this test; cases from KOE_TEST_DATA/kokoro-tiny and KOE_SHARED_VECTORS/kokoro-tiny. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/albert.h"
#include "model/ops_dense.h"
#include "model/predictor.h"
#include "model/text_encoder.h"

/* ---- weights from the raw blob + manifest ------------------------------------------------ */
typedef struct blob {
    cJSON *tensors;
    char *data;
    size_t len;
    const char *hide;    /* report this tensor as absent */
    const char *hide2;   /* and this one */
    const char *reshape; /* report this tensor with its last dim one larger */
} blob;

static const float *blob_lookup(void *user, const char *name, int *ndim, int64_t shape[4]) {
    blob *b = user;
    if ((b->hide && !strcmp(name, b->hide)) || (b->hide2 && !strcmp(name, b->hide2))) return NULL;
    const cJSON *t;
    cJSON_ArrayForEach(t, b->tensors) {
        const cJSON *nm = cJSON_GetObjectItem(t, "name");
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, name)) continue;
        const cJSON *dt = cJSON_GetObjectItem(t, "dtype"), *sh = cJSON_GetObjectItem(t, "shape");
        const cJSON *off = cJSON_GetObjectItem(t, "offset"), *nb = cJSON_GetObjectItem(t, "nbytes");
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "f32") || !cJSON_IsArray(sh) ||
            !cJSON_IsNumber(off) || !cJSON_IsNumber(nb))
            return NULL;
        size_t o = (size_t)off->valuedouble, n = (size_t)nb->valuedouble;
        int nd = cJSON_GetArraySize(sh);
        if (o + n > b->len || o % 4 || nd > 4) return NULL;
        *ndim = nd;
        for (int i = 0; i < nd; i++) shape[i] = (int64_t)cJSON_GetArrayItem(sh, i)->valuedouble;
        if (b->reshape && !strcmp(name, b->reshape)) shape[nd - 1] += 1;
        return (const float *)(b->data + o);
    }
    return NULL;
}

static int blob_open(blob *b, const char *dir) {
    char p[1200];
    memset(b, 0, sizeof *b);
    snprintf(p, sizeof p, "%s/kokoro-tiny-seed1.manifest.json", dir);
    char *m = kt_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/kokoro-tiny-seed1.bin", dir);
    b->data = kt_read_file(p, &b->len);
    b->tensors = m ? cJSON_Parse(m) : NULL;
    free(m);
    if (!b->data || !cJSON_IsArray(b->tensors)) {
        cJSON_Delete(b->tensors);
        free(b->data);
        memset(b, 0, sizeof *b);
        return -1;
    }
    return 0;
}

/* Without the raw blob (a clone without ../shared): random weights of the committed manifest's
 * names and shapes, enough for every test but the reference comparison. */
static int blob_random(blob *b, const char *dir) {
    char p[1200];
    memset(b, 0, sizeof *b);
    snprintf(p, sizeof p, "%s/kokoro-tiny-seed1.manifest.json", dir);
    char *m = kt_read_file(p, NULL);
    b->tensors = m ? cJSON_Parse(m) : NULL;
    free(m);
    if (!cJSON_IsArray(b->tensors)) {
        cJSON_Delete(b->tensors);
        b->tensors = NULL;
        return -1;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, b->tensors) {
        const cJSON *off = cJSON_GetObjectItem(t, "offset"), *nb = cJSON_GetObjectItem(t, "nbytes");
        if (cJSON_IsNumber(off) && cJSON_IsNumber(nb) &&
            (size_t)(off->valuedouble + nb->valuedouble) > b->len)
            b->len = (size_t)(off->valuedouble + nb->valuedouble);
    }
    b->data = malloc(b->len ? b->len : 1);
    if (!b->data) return -1;
    uint64_t x = 12345;
    for (size_t i = 0; i + 4 <= b->len; i += 4) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        float v = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5) * 0.6f;
        memcpy(b->data + i, &v, 4);
    }
    return 0;
}

static void blob_close(blob *b) {
    cJSON_Delete(b->tensors);
    free(b->data);
}

/* ---- the model's front parts ------------------------------------------------------------- */
typedef struct front {
    koe_albert *bert;
    koe_predictor *pred;
    koe_text_encoder *te;
} front;

static koe_albert_config bert_cfg; /* from the tiny config's "plbert" */
static koe_pool *pool;

static int front_load(front *f, koe_tensor_lookup lk, void *user, koe_error *err) {
    memset(f, 0, sizeof *f);
    f->bert = koe_albert_new(lk, user, &bert_cfg, err);
    if (f->bert) f->pred = koe_predictor_new(lk, user, err);
    if (f->pred) f->te = koe_text_encoder_new(lk, user, err);
    return f->te ? 0 : -1;
}

static void front_free(front *f) {
    koe_albert_free(f->bert);
    koe_predictor_free(f->pred);
    koe_text_encoder_free(f->te);
    memset(f, 0, sizeof *f);
}

/* ---- comparisons against a case ---------------------------------------------------------- */
static const char *const STAGES[] = {"bert",       "d_en",     "pred_text_enc", "pred_lstm",
                                     "dur_logits", "duration", "pred_dur",      "en",
                                     "F0_pred",    "N_pred",   "t_en",          "asr"};
enum { N_STAGES = sizeof STAGES / sizeof STAGES[0] };

typedef struct cmp {
    const char *dir, *mode; /* mode: "chained" or "reference inputs" */
    cJSON *tensors;         /* the case's meta.json "tensors" */
    int seen[N_STAGES];
    int failed[N_STAGES];
    double rel[N_STAGES];
} cmp;

static int stage_index(const char *s) {
    for (int i = 0; i < N_STAGES; i++)
        if (!strcmp(STAGES[i], s)) return i;
    return -1;
}

/* Reads a case tensor (f32 or i64, the latter converted) and checks its element count. */
static float *read_tensor(const char *dir, cJSON *tensors, const char *name, size_t *n_out) {
    const cJSON *t = cJSON_GetObjectItem(tensors, name);
    const cJSON *file = cJSON_GetObjectItem(t, "file"), *dt = cJSON_GetObjectItem(t, "dtype");
    const cJSON *sh = cJSON_GetObjectItem(t, "shape");
    if (!cJSON_IsString(file) || !cJSON_IsString(dt) || !cJSON_IsArray(sh)) return NULL;
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) n *= (size_t)d->valuedouble;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file->valuestring);
    size_t len = 0;
    void *raw = kt_read_file(p, &len);
    int is_i64 = !strcmp(dt->valuestring, "i64");
    if (!raw || len != n * (is_i64 ? 8 : 4)) {
        free(raw);
        return NULL;
    }
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (is_i64)
        for (size_t i = 0; i < n; i++) v[i] = (float)((const int64_t *)raw)[i];
    else
        memcpy(v, raw, n * sizeof *v);
    free(raw);
    if (n_out) *n_out = n;
    return v;
}

static int shape_matches(cJSON *tensors, const char *name, int ndim, const int64_t *shape) {
    const cJSON *sh = cJSON_GetObjectItem(cJSON_GetObjectItem(tensors, name), "shape");
    if (cJSON_GetArraySize(sh) != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if ((int64_t)cJSON_GetArrayItem(sh, i)->valuedouble != shape[i]) return 0;
    return 1;
}

static void tap_cmp(void *user, const char *stage, const float *data, int ndim,
                    const int64_t *shape) {
    cmp *c = user;
    int si = stage_index(stage);
    KT_CHECK(si >= 0, "unexpected stage %s", stage);
    if (si < 0) return;
    c->seen[si] = 1;
    size_t n = 0;
    float *ref = read_tensor(c->dir, c->tensors, stage, &n);
    if (!ref || !shape_matches(c->tensors, stage, ndim, shape)) {
        c->failed[si] = 1;
        KT_CHECK(0, "%s (%s): stage %s: reference missing or shape differs", c->dir, c->mode,
                 stage);
        free(ref);
        return;
    }
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(ref[i]));
        double d = fabs((double)data[i] - ref[i]);
        if (!(d <= e)) { /* NaN counts as the worst */
            e = d;
            at = i;
        }
    }
    double rel = m > 0 ? e / m : e;
    int exact = !strcmp(stage, "pred_dur");
    int ok = exact ? e == 0.0 : rel <= 1e-4;
    c->rel[si] = rel;
    c->failed[si] = !ok;
    if (!ok)
        fprintf(stderr, "  %s (%s): %s differs: rel %.3g (at %zu: %g vs %g)\n", c->dir, c->mode,
                stage, rel, at, (double)data[at], (double)ref[at]);
    if (getenv("KOE_TEST_VERBOSE"))
        fprintf(stderr, "  %s (%s) %-14s rel %.3g\n", c->dir, c->mode, stage, rel);
    free(ref);
}

/* One check per run: every expected stage seen and within tolerance, naming the first that
 * is not (in model order). */
static void report(cmp *c, const int *expect) {
    const char *first = NULL;
    for (int i = 0; i < N_STAGES && !first; i++)
        if (expect[i] && (!c->seen[i] || c->failed[i])) first = STAGES[i];
    KT_CHECK(!first, "%s (%s): first stage off: %s%s", c->dir, c->mode, first ? first : "",
             first && !c->seen[stage_index(first)] ? " (never produced)" : "");
}

static float *scratch_for(size_t floats) {
    return malloc((floats ? floats : 1) * sizeof(float));
}

static void emit_asr(cmp *c, const float *t_en, int H, int T, const int32_t *dur, int F) {
    float *asr = malloc((size_t)H * F * sizeof *asr);
    koe_align_expand(t_en, H, T, dur, asr);
    int64_t shape[3] = {1, H, F};
    tap_cmp(c, "asr", asr, 3, shape);
    free(asr);
}

/* Durations → F0/N → (with t_en) asr, from the given d_en [T,H] and s_pro. */
static void run_predictor(const front *f, cmp *c, const float *d_en, const float *s_pro, int T,
                          float speed, const float *t_en_ch, const float *ref_d,
                          const int32_t *ref_dur) {
    koe_stage_tap tap = {tap_cmp, c};
    koe_error err = {0};
    int H = koe_predictor_width(f->pred), W = H + koe_predictor_style(f->pred), F = 0;
    float *d = malloc((size_t)T * W * sizeof *d);
    int32_t *dur = malloc((size_t)T * sizeof *dur);
    float *s = scratch_for(koe_predictor_dur_scratch_floats(f->pred, T, pool));
    int rc =
        koe_predictor_durations(f->pred, pool, s, d_en, T, s_pro, speed, &tap, d, dur, &F, &err);
    KT_CHECK(rc == 0, "%s (%s): durations: %s", c->dir, c->mode, err.msg);
    free(s);
    if (rc == 0) {
        /* With reference inputs, F0/N and asr get the reference's d and durations too. */
        const float *dd = ref_d ? ref_d : d;
        const int32_t *du = ref_dur ? ref_dur : dur;
        int FF = 0;
        for (int t = 0; t < T; t++) FF += du[t];
        float *f0 = malloc((size_t)2 * FF * sizeof *f0), *nn = malloc((size_t)2 * FF * sizeof *nn);
        /* F0/N from reference inputs on one thread (the branches one after the other), chained
         * on two (the branches side by side). */
        koe_pool *pl = ref_d ? NULL : pool;
        s = scratch_for(koe_predictor_f0n_scratch_floats(f->pred, T, FF, pl));
        rc = koe_predictor_f0n(f->pred, pl, s, dd, T, du, FF, s_pro, &tap, NULL, f0, nn, &err);
        KT_CHECK(rc == 0, "%s (%s): F0/N: %s", c->dir, c->mode, err.msg);
        free(s);
        free(f0);
        free(nn);
        if (t_en_ch) emit_asr(c, t_en_ch, koe_text_encoder_width(f->te), T, du, FF);
    }
    free(d);
    free(dur);
}

static int n_cases;

static void run_case(const front *f, const char *dir) {
    char p[1024];
    if (snprintf(p, sizeof p, "%s/meta.json", dir) >= (int)sizeof p) return;
    char *txt = kt_read_file(p, NULL);
    if (!txt) return;
    cJSON *meta = cJSON_Parse(txt);
    free(txt);
    cJSON *tensors = cJSON_GetObjectItem(meta, "tensors");
    const cJSON *tok = cJSON_GetObjectItem(meta, "tokens"),
                *sp = cJSON_GetObjectItem(meta, "speed");
    KT_CHECK(cJSON_IsNumber(tok) && cJSON_IsNumber(sp) && tensors, "%s: bad meta.json", dir);
    if (!cJSON_IsNumber(tok) || !cJSON_IsNumber(sp) || !tensors) {
        cJSON_Delete(meta);
        return;
    }
    int T = (int)tok->valuedouble;
    float speed = (float)sp->valuedouble;
    size_t n_ids = 0;
    float *idf = read_tensor(dir, tensors, "input_ids", &n_ids);
    float *ref_s = read_tensor(dir, tensors, "ref_s", NULL);
    float *r_den = read_tensor(dir, tensors, "d_en", NULL);
    float *r_d = read_tensor(dir, tensors, "pred_text_enc", NULL);
    float *r_dur = read_tensor(dir, tensors, "pred_dur", NULL);
    float *r_ten = read_tensor(dir, tensors, "t_en", NULL);
    KT_CHECK(idf && ref_s && r_den && r_d && r_dur && r_ten && n_ids == (size_t)T,
             "%s: case tensors missing", dir);
    if (idf && ref_s && r_den && r_d && r_dur && r_ten && n_ids == (size_t)T) {
        int H = koe_albert_out_width(f->bert);
        int64_t *ids = malloc((size_t)T * sizeof *ids);
        int32_t *rdur = malloc((size_t)T * sizeof *rdur);
        for (int t = 0; t < T; t++) {
            ids[t] = (int64_t)idf[t];
            rdur[t] = (int32_t)r_dur[t];
        }
        const float *s_pro = ref_s + 128;
        koe_error err = {0};
        int expect_all[N_STAGES];
        for (int i = 0; i < N_STAGES; i++) expect_all[i] = 1;

        /* Chained: everything from input_ids and ref_s. */
        cmp c = {.dir = dir, .mode = "chained", .tensors = tensors};
        koe_stage_tap tap = {tap_cmp, &c};
        float *d_en = malloc((size_t)T * H * sizeof *d_en);
        float *s = scratch_for(koe_albert_scratch_floats(f->bert, T, pool));
        int rc = koe_albert_run(f->bert, pool, s, ids, T, &tap, d_en, &err);
        KT_CHECK(rc == 0, "%s: PL-BERT: %s", dir, err.msg);
        free(s);
        int He = koe_text_encoder_width(f->te);
        float *t_en = malloc((size_t)He * T * sizeof *t_en);
        s = scratch_for(koe_text_encoder_scratch_floats(f->te, T, pool));
        rc |= koe_text_encoder_run(f->te, pool, s, ids, T, &tap, t_en, &err);
        KT_CHECK(rc == 0, "%s: text encoder: %s", dir, err.msg);
        free(s);
        if (rc == 0) run_predictor(f, &c, d_en, s_pro, T, speed, t_en, NULL, NULL);
        report(&c, expect_all);

        /* Reference inputs: the predictor from the reference d_en (as [T,H]); F0/N from the
         * reference pred_text_enc and pred_dur; asr from the reference t_en and pred_dur. */
        cmp r = {.dir = dir, .mode = "reference inputs", .tensors = tensors};
        float *den_rows = malloc((size_t)T * H * sizeof *den_rows);
        koe_transpose(r_den, H, T, T, den_rows, H);
        run_predictor(f, &r, den_rows, s_pro, T, speed, r_ten, r_d, rdur);
        int expect_pred[N_STAGES] = {0};
        for (int i = stage_index("pred_text_enc"); i <= stage_index("N_pred"); i++)
            expect_pred[i] = 1;
        expect_pred[stage_index("asr")] = 1;
        report(&r, expect_pred);
        free(den_rows);
        free(d_en);
        free(t_en);
        free(ids);
        free(rdur);
        n_cases++;
    }
    free(idf);
    free(ref_s);
    free(r_den);
    free(r_d);
    free(r_dur);
    free(r_ten);
    cJSON_Delete(meta);
}

static void run_cases_in(const front *f, const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    char names[64][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (!strncmp(e->d_name, "case", 4)) snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++) {
        char p[1024];
        if (snprintf(p, sizeof p, "%s/%s", root, names[i]) < (int)sizeof p) run_case(f, p);
    }
}

/* ---- tests ------------------------------------------------------------------------------- */
static blob weights;
static front model;
static char committed[1024], shared[1024]; /* <dir>/kokoro-tiny */

static void test_reference_cases(void) {
    run_cases_in(&model, committed);
    run_cases_in(&model, shared);
    KT_CHECK(n_cases >= 2, "only %d reference cases found", n_cases);
}

static void expect_load_error(const char *hide, const char *reshape, koe_code code) {
    front f;
    koe_error err = {0};
    weights.hide = hide;
    weights.reshape = reshape;
    int rc = front_load(&f, blob_lookup, &weights, &err);
    const char *name = hide ? hide : reshape;
    KT_CHECK(rc != 0 && err.code == code && strstr(err.msg, name), "load without %s: %s", name,
             err.msg);
    front_free(&f);
    weights.hide = weights.reshape = NULL;
}

static void test_load_errors(void) {
    expect_load_error("bert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.bias", NULL,
                      KOE_ERR_NOT_FOUND);
    expect_load_error("bert_encoder.weight", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("predictor.text_encoder.lstms.3.fc.bias", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("predictor.shared.weight_hh_l0_reverse", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("text_encoder.cnn.2.1.beta", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("predictor.N.1.norm2.norm.bias", NULL, KOE_ERR_NOT_FOUND); /* half a pair */
    expect_load_error("predictor.F0.1.pool.weight_g", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("predictor.F0.1.conv1x1.weight_v", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error("predictor.N_proj.bias", NULL, KOE_ERR_NOT_FOUND);
    expect_load_error(NULL, "predictor.F0.2.conv2.weight_v", KOE_ERR_FORMAT);
    expect_load_error(NULL, "predictor.N.0.norm1.fc.weight", KOE_ERR_FORMAT);
    expect_load_error(NULL,
                      "bert.encoder.albert_layer_groups.0.albert_layers.0.attention.key.weight",
                      KOE_ERR_FORMAT);
    expect_load_error(NULL, "predictor.lstm.weight_ih_l0", KOE_ERR_FORMAT);
    expect_load_error(NULL, "predictor.duration_proj.linear_layer.weight", KOE_ERR_FORMAT);
    expect_load_error(NULL, "text_encoder.cnn.1.0.weight_v", KOE_ERR_FORMAT);
    expect_load_error(NULL, "text_encoder.lstm.bias_hh_l0", KOE_ERR_FORMAT);
    /* an AdaIN without the instance norm's affine (both halves absent) is the identity: loads */
    {
        front f;
        koe_error e2 = {0};
        weights.hide = "predictor.F0.2.norm1.norm.weight";
        weights.hide2 = "predictor.F0.2.norm1.norm.bias";
        KT_CHECK(front_load(&f, blob_lookup, &weights, &e2) == 0, "AdaIN without affine: %s",
                 e2.msg);
        front_free(&f);
        weights.hide = weights.hide2 = NULL;
    }
    /* a head count that does not divide the hidden width */
    koe_albert_config bad = {bert_cfg.n_layers, 3};
    koe_error err = {0};
    koe_albert *a = koe_albert_new(blob_lookup, &weights, &bad, &err);
    KT_CHECK(!a && err.code == KOE_ERR_FORMAT, "3 heads: %s", err.msg);
    koe_albert_free(a);
}

static void test_bad_input(void) {
    koe_error err = {0};
    int T = 4, H = koe_albert_out_width(model.bert);
    int64_t ids[4] = {0, 5, 100000, 0};
    float *d_en = calloc((size_t)T * H, sizeof *d_en);
    float *s = scratch_for(koe_albert_scratch_floats(model.bert, T, pool));
    KT_CHECK(koe_albert_run(model.bert, pool, s, ids, T, NULL, d_en, &err) == KOE_ERR_INVALID &&
                 strstr(err.msg, "100000"),
             "id out of range: %s", err.msg);
    ids[2] = -1;
    KT_CHECK(koe_albert_run(model.bert, pool, s, ids, T, NULL, d_en, &err) == KOE_ERR_INVALID,
             "negative id: %s", err.msg);
    KT_CHECK(koe_albert_run(model.bert, pool, s, ids, 0, NULL, d_en, &err) == KOE_ERR_INVALID,
             "no tokens: %s", err.msg);
    int too_many = koe_albert_max_tokens(model.bert) + 1;
    KT_CHECK(koe_albert_run(model.bert, pool, s, ids, too_many, NULL, d_en, &err) ==
                 KOE_ERR_INVALID,
             "over max positions: %s", err.msg);
    free(s);
    float *t_en = malloc((size_t)koe_text_encoder_width(model.te) * T * sizeof *t_en);
    s = scratch_for(koe_text_encoder_scratch_floats(model.te, T, pool));
    KT_CHECK(koe_text_encoder_run(model.te, pool, s, ids, T, NULL, t_en, &err) == KOE_ERR_INVALID,
             "text encoder, negative id: %s", err.msg);
    free(s);
    free(t_en);
    float style[128] = {0};
    int W = koe_predictor_width(model.pred) + koe_predictor_style(model.pred), F = 0;
    float *d = malloc((size_t)T * W * sizeof *d);
    int32_t dur[4];
    s = scratch_for(koe_predictor_dur_scratch_floats(model.pred, T, pool));
    float speeds[3] = {0.0f, -1.0f, NAN};
    for (int i = 0; i < 3; i++)
        KT_CHECK(koe_predictor_durations(model.pred, pool, s, d_en, T, style, speeds[i], NULL, d,
                                         dur, &F, &err) == KOE_ERR_INVALID,
                 "speed %g: %s", (double)speeds[i], err.msg);
    /* a tiny speed: durations beyond any sensible length are refused, not overflowed */
    KT_CHECK(koe_predictor_durations(model.pred, pool, s, d_en, T, style, 1e-30f, NULL, d, dur, &F,
                                     &err) == KOE_ERR_LIMIT,
             "speed 1e-30: %s", err.msg);
    int rc =
        koe_predictor_durations(model.pred, pool, s, d_en, T, style, 1.0f, NULL, d, dur, &F, &err);
    int sum = 0;
    for (int t = 0; t < T; t++) sum += dur[t] >= 1 ? dur[t] : -1000000;
    KT_CHECK(rc == 0 && F == sum, "durations on zero style: F %d = sum %d", F, sum);
    free(s);
    /* F0/N with durations that disagree with the frame count */
    if (rc == 0) {
        s = scratch_for(koe_predictor_f0n_scratch_floats(model.pred, T, F + 1, pool));
        float *f0 = malloc((size_t)2 * (F + 1) * sizeof *f0), *nn = malloc((size_t)2 * (F + 1) * 4);
        KT_CHECK(koe_predictor_f0n(model.pred, pool, s, d, T, dur, F + 1, style, NULL, NULL, f0, nn,
                                   &err) == KOE_ERR_INVALID,
                 "F0/N with a wrong frame count: %s", err.msg);
        dur[1] = 0;
        KT_CHECK(koe_predictor_f0n(model.pred, pool, s, d, T, dur, F, style, NULL, NULL, f0, nn,
                                   &err) == KOE_ERR_INVALID,
                 "F0/N with a zero duration: %s", err.msg);
        free(s);
        free(f0);
        free(nn);
    }
    free(d);
    free(d_en);
}

/* The chain from ids to durations and t_en, with a given pool; outputs malloc'd. */
typedef struct chain_out {
    float *d_en, *t_en, *d;
    int32_t *dur;
    int F;
} chain_out;

static int run_chain(koe_pool *pl, const int64_t *ids, int T, const float *s_pro, chain_out *o,
                     koe_error *err) {
    int H = koe_albert_out_width(model.bert), He = koe_text_encoder_width(model.te);
    int W = koe_predictor_width(model.pred) + koe_predictor_style(model.pred);
    o->d_en = malloc((size_t)T * H * sizeof(float));
    o->t_en = malloc((size_t)T * He * sizeof(float));
    o->d = malloc((size_t)T * W * sizeof(float));
    o->dur = malloc((size_t)T * sizeof(int32_t));
    float *s = scratch_for(koe_albert_scratch_floats(model.bert, T, pl));
    int rc = koe_albert_run(model.bert, pl, s, ids, T, NULL, o->d_en, err);
    free(s);
    s = scratch_for(koe_text_encoder_scratch_floats(model.te, T, pl));
    if (!rc) rc = koe_text_encoder_run(model.te, pl, s, ids, T, NULL, o->t_en, err);
    free(s);
    s = scratch_for(koe_predictor_dur_scratch_floats(model.pred, T, pl));
    if (!rc)
        rc = koe_predictor_durations(model.pred, pl, s, o->d_en, T, s_pro, 1.0f, NULL, o->d, o->dur,
                                     &o->F, err);
    free(s);
    return rc;
}

static void chain_free(chain_out *o) {
    free(o->d_en);
    free(o->t_en);
    free(o->d);
    free(o->dur);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double e = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return e / m;
}

/* One and two threads agree; one- and two-token inputs run. */
static void test_threads_and_short(void) {
    float s_pro[128];
    for (int i = 0; i < 128; i++) s_pro[i] = 0.1f * (float)((i * 37) % 11 - 5);
    int64_t ids[40];
    for (int t = 0; t < 40; t++) ids[t] = t == 0 || t == 39 ? 0 : 1 + (t * 13) % 170;
    koe_error err = {0};
    chain_out a, b;
    int ra = run_chain(NULL, ids, 40, s_pro, &a, &err);
    int rb = run_chain(pool, ids, 40, s_pro, &b, &err);
    KT_CHECK(ra == 0 && rb == 0, "chain: %s", err.msg);
    if (ra == 0 && rb == 0) {
        int H = koe_albert_out_width(model.bert), He = koe_text_encoder_width(model.te);
        KT_CHECK(max_rel(a.d_en, b.d_en, (size_t)40 * H) < 1e-6, "d_en 1 vs 2 threads");
        KT_CHECK(max_rel(a.t_en, b.t_en, (size_t)40 * He) < 1e-6, "t_en 1 vs 2 threads");
        KT_CHECK(a.F == b.F && !memcmp(a.dur, b.dur, 40 * sizeof(int32_t)),
                 "durations 1 vs 2 threads");
    }
    chain_free(&a);
    chain_free(&b);
    for (int T = 1; T <= 2; T++) {
        chain_out c;
        int rc = run_chain(pool, ids, T, s_pro, &c, &err);
        int finite = 1;
        for (int i = 0; rc == 0 && i < T * koe_albert_out_width(model.bert); i++)
            finite &= isfinite(c.d_en[i]);
        KT_CHECK(rc == 0 && finite && c.F >= T, "%d token(s): rc %d (%s), F %d", T, rc, err.msg,
                 c.F);
        chain_free(&c);
    }
}

static void test_align(void) {
    float x[6] = {1, 2, 3, 10, 20, 30}; /* [2, 3] */
    int32_t dur[3] = {2, 1, 3};
    float y[12];
    koe_align_expand(x, 2, 3, dur, y);
    float want[12] = {1, 1, 2, 3, 3, 3, 10, 10, 20, 30, 30, 30};
    KT_CHECK(!memcmp(y, want, sizeof want), "alignment repeats each token's column");
}

static int read_bert_config(const char *path) {
    char *txt = kt_read_file(path, NULL);
    cJSON *cfg = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    const cJSON *pl = cJSON_GetObjectItem(cfg, "plbert");
    const cJSON *nl = cJSON_GetObjectItem(pl, "num_hidden_layers");
    const cJSON *nh = cJSON_GetObjectItem(pl, "num_attention_heads");
    int ok = cJSON_IsNumber(nl) && cJSON_IsNumber(nh);
    if (ok) {
        bert_cfg.n_layers = (int)nl->valuedouble;
        bert_cfg.n_heads = (int)nh->valuedouble;
    }
    cJSON_Delete(cfg);
    return ok ? 0 : -1;
}

int main(void) {
    const char *data = kt_env("KOE_TEST_DATA", "tests/data");
    const char *vec = kt_env("KOE_SHARED_VECTORS", "../shared/vectors");
    snprintf(committed, sizeof committed, "%s/kokoro-tiny", data);
    snprintf(shared, sizeof shared, "%s/kokoro-tiny", vec);
    char p[1100];
    snprintf(p, sizeof p, "%s/kokoro-tiny-seed1.config.json", committed);
    if (read_bert_config(p)) {
        fprintf(stderr, "cannot read %s\n", p);
        return 1;
    }
    int random_weights = 0;
    if (blob_open(&weights, shared)) {
        if (blob_random(&weights, committed)) return kt_skip("no kokoro-tiny manifest");
        random_weights = 1;
        fprintf(stderr,
                "no %s/kokoro-tiny-seed1.bin: reference cases skipped, the other tests "
                "run on random weights\n",
                shared);
    }
    koe_error err = {0};
    pool = koe_pool_new(2, &err);
    if (!pool || front_load(&model, blob_lookup, &weights, &err)) {
        fprintf(stderr, "loading: %s\n", err.msg);
        return 1;
    }
    kt_run("align", test_align);
    if (!random_weights) kt_run("reference_cases", test_reference_cases);
    kt_run("load_errors", test_load_errors);
    kt_run("bad_input", test_bad_input);
    kt_run("threads_and_short", test_threads_and_short);
    front_free(&model);
    koe_pool_free(pool);
    blob_close(&weights);
    return kt_finish();
}
