/* Loudness normalization for streaming: a gain toward the target integrated loudness, then a
 * look-ahead true-peak limiter.
 *
 * Gain: with a calibration the gain is fixed (target - input_lufs). Without one, the input is
 * measured as it arrives with the BS.1770 method (K-weighting, 400 ms blocks every 100 ms,
 * absolute gate -70 LUFS, relative gate -10 LU, blocks kept in a 0.1 LU histogram so memory is
 * bounded); the estimate for each piece of at most one second of a call includes that piece, so a
 * segment handed over whole is normalized from its first sample. The first estimate is applied
 * at once, later ones through an asymmetric smoother. Two more meters, before and after the
 * limiter, give the loudness the limiter removes, which the gain then makes up.
 *
 * Limiter: the required gain of every sample comes from a 4x oversampled peak estimate around
 * it; a sliding minimum over the look-ahead followed by a moving average of the same length
 * reaches that gain by the time the sample leaves (the average of values that are all below it),
 * and a one-pole release lets the gain recover. */
#include <ebur128.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "koe/audio.h"

#define HIST_MIN_LUFS      -70.0
#define HIST_BINS          800 /* 0.1 LU bins from -70 to +10 LUFS */
#define ASSUMED_INPUT_LUFS -20.0
#define MAX_GAIN_DB        40.0
#define MAX_MAKEUP_DB      3.0  /* a limiter taking more than this is squashing, not limiting */
#define GAIN_UP_S          0.25 /* gain rises slowly (an early estimate tends to be low) */
#define GAIN_DOWN_S        0.05 /* and falls fast, so an early overshoot is short */
#define RECENT_SUBS        30   /* sub-blocks of 100 ms over which the limiter's loss is measured */
#define EARLY_MIN_S        0.1  /* input needed before a first estimate is trusted */
#define EST_PIECE_S        1.0
#define TP_MARGIN_DB       0.2 /* our 4x estimate vs any other meter's filter */
#define OS                 4   /* oversampling of the peak estimate */
#define OS_HALF            8   /* interpolation filter: 16 taps per phase */

typedef struct biquad {
    double b0, b1, b2, a1, a2, z1, z2;
} biquad;

/* A running BS.1770 integrated-loudness meter. */
typedef struct meter {
    biquad shelf, highpass;
    double sub_sum; /* K-weighted energy of the current 100 ms sub-block */
    int sub_len, sub_fill;
    double sub_pow[4]; /* last four sub-block mean powers */
    int64_t subs_done;
    double early_sum; /* all K-weighted energy before the first full block */
    int64_t early_n;
    double bin_pow[HIST_BINS];
    int64_t bin_count[HIST_BINS];
    int64_t blocks;
    double recent[RECENT_SUBS]; /* powers of the last sub-blocks (a sliding window, so one
                                   early outlier is gone after 3 s) */
    double recent_sum;
    double total; /* all K-weighted energy */
} meter;

struct koe_loudness {
    int rate;
    double target_lufs, ceiling; /* ceiling is linear, margin included */
    double input_lufs;           /* calibration, 0 = estimate */
    meter in;                    /* the input */
    meter pre, out;              /* before and after the limiter: what it takes away */
    float *scratch;              /* gained samples of one piece, for the pre-limiter meter */
    double estimate;             /* current input estimate (LUFS), or 0 = none yet */
    /* --- gain */
    double gain_db, gain_target_db;
    int gain_set; /* an estimate has been applied */
    double gain_up, gain_down;
    /* --- limiter */
    int look;     /* L: look-ahead in samples */
    size_t delay; /* K + L */
    float *x;     /* ring of gained samples, length xlen, stored twice (x[p] = x[p + xlen])
                     so any window of it is contiguous */
    size_t xlen;
    int64_t t; /* samples pushed */
    float interp[OS - 1][2 * OS_HALF];
    double q_prev; /* peak of the interval before the current centre sample */
    double *r_val; /* sliding-min deque of required gains (values, indices) */
    int64_t *r_idx;
    size_t dq_head, dq_len, dq_cap;
    double *e_ring; /* last L+1 envelope values */
    double e_sum, e_prev, release;
    int64_t n_in, n_out;
};

/* ---- K-weighting (BS.1770 filter parameters, designed for any rate) ------------------------- */

/* A fresh meter (every sum zero) with the K-weighting filters for this rate. */
static void meter_init(meter *m, int rate) {
    memset(m, 0, sizeof *m);
    double fs = rate;
    m->sub_len = rate / 10;
    double f0 = 1681.974450955533, gain_db = 3.999843853973347, q = 0.7071752369554196;
    double k = tan(M_PI * f0 / fs), vh = pow(10, gain_db / 20), vb = pow(vh, 0.4996667741545416);
    double a0 = 1 + k / q + k * k;
    m->shelf = (biquad){(vh + vb * k / q + k * k) / a0,
                        2 * (k * k - vh) / a0,
                        (vh - vb * k / q + k * k) / a0,
                        2 * (k * k - 1) / a0,
                        (1 - k / q + k * k) / a0,
                        0,
                        0};
    f0 = 38.13547087602444;
    q = 0.5003270373238773;
    k = tan(M_PI * f0 / fs);
    a0 = 1 + k / q + k * k;
    m->highpass = (biquad){1, -2, 1, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0, 0, 0};
}

static double biquad_run(biquad *f, double x) {
    double y = f->b0 * x + f->z1;
    f->z1 = f->b1 * x - f->a1 * y + f->z2;
    f->z2 = f->b2 * x - f->a2 * y;
    return y;
}

static double power_to_lufs(double p) {
    return p > 0 ? -0.691 + 10 * log10(p) : -HUGE_VAL;
}

static void add_block(meter *m, double pow4) {
    double l = power_to_lufs(pow4);
    if (l <= HIST_MIN_LUFS) return;
    int bin = (int)((l - HIST_MIN_LUFS) * 10);
    if (bin >= HIST_BINS) bin = HIST_BINS - 1;
    m->bin_pow[bin] += pow4;
    m->bin_count[bin]++;
    m->blocks++;
}

static void measure(meter *m, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = in[i];
        if (!isfinite(v)) v = 0;
        double y = biquad_run(&m->highpass, biquad_run(&m->shelf, v));
        m->sub_sum += y * y;
        m->total += y * y;
        if (m->subs_done < 4) {
            m->early_sum += y * y;
            m->early_n++;
        }
        if (++m->sub_fill == m->sub_len) {
            double pw = m->sub_sum / m->sub_len;
            m->sub_pow[m->subs_done % 4] = pw;
            m->recent[m->subs_done % RECENT_SUBS] = pw;
            m->recent_sum = 0; /* summed afresh: no drift after a large early value */
            for (int r = 0; r < RECENT_SUBS; r++) m->recent_sum += m->recent[r];
            m->subs_done++;
            m->sub_sum = 0;
            m->sub_fill = 0;
            if (m->subs_done >= 4)
                add_block(m,
                          0.25 * (m->sub_pow[0] + m->sub_pow[1] + m->sub_pow[2] + m->sub_pow[3]));
        }
    }
}

/* Gated integrated loudness of the input so far; 0 when there is nothing above the gates yet.
 * Before the first full 400 ms block, the plain mean power of what exists stands in. */
static double current_estimate(const meter *m) {
    if (m->blocks == 0) {
        if (m->subs_done >= 4 || m->early_n < (int64_t)(EARLY_MIN_S * m->sub_len * 10)) return 0;
        double l = power_to_lufs(m->early_sum / (double)m->early_n);
        return l > HIST_MIN_LUFS ? l : 0;
    }
    double sum = 0;
    int64_t count = 0;
    for (int b = 0; b < HIST_BINS; b++) {
        sum += m->bin_pow[b];
        count += m->bin_count[b];
    }
    double gate = power_to_lufs(sum / (double)count) - 10;
    sum = 0;
    count = 0;
    for (int b = 0; b < HIST_BINS; b++) {
        double centre = HIST_MIN_LUFS + (b + 0.5) / 10;
        if (centre > gate) {
            sum += m->bin_pow[b];
            count += m->bin_count[b];
        }
    }
    return count ? power_to_lufs(sum / (double)count) : 0;
}

/* ---- limiter --------------------------------------------------------------------------- */

static void design_interp(koe_loudness *ld) {
    const double beta = 7.0;
    double i0b = 0, term = 1;
    for (int k = 0; k < 60; k++) { /* I0(beta) */
        if (k) term *= (beta * beta / 4) / ((double)k * k);
        i0b += term;
    }
    for (int ph = 1; ph < OS; ph++) {
        double sum = 0, v[2 * OS_HALF];
        for (int j = 0; j < 2 * OS_HALF; j++) {
            /* Tap j multiplies x[c + j - (OS_HALF - 1)]; the point sits at c + ph / OS. */
            double tau = (double)(j - (OS_HALF - 1)) - (double)ph / OS;
            double sinc = sin(M_PI * tau) / (M_PI * tau);
            double r = tau / OS_HALF, a = beta * sqrt(r * r < 1 ? 1 - r * r : 0), w = 0;
            term = 1;
            for (int k = 0; k < 60; k++) {
                if (k) term *= (a * a / 4) / ((double)k * k);
                w += term;
            }
            v[j] = sinc * w / i0b;
            sum += v[j];
        }
        for (int j = 0; j < 2 * OS_HALF; j++) ld->interp[ph - 1][j] = (float)(v[j] / sum);
    }
}

/* Ring position of sample i (i >= -xlen; never-written positions hold zeros before the start). */
static size_t x_pos(const koe_loudness *ld, int64_t i) {
    int64_t len = (int64_t)ld->xlen;
    return (size_t)(((i % len) + len) % len);
}

/* Pushes one gained sample; returns 1 and the delayed output in *out once the delay is filled. */
static int limiter_push(koe_loudness *ld, float v, float *out) {
    int64_t t = ld->t++;
    size_t p = x_pos(ld, t);
    ld->x[p] = ld->x[p + ld->xlen] = v;
    /* Peak of the interval [c, c+1) for the centre c = t - OS_HALF, whose interpolation window
     * ends at t. */
    int64_t c = t - OS_HALF;
    const float *win = ld->x + x_pos(ld, c - (OS_HALF - 1));
    double q = fabs(win[OS_HALF - 1]);
    for (int ph = 0; ph < OS - 1; ph++) {
        float acc = 0;
        for (int j = 0; j < 2 * OS_HALF; j++) acc += ld->interp[ph][j] * win[j];
        if (fabsf(acc) > q) q = fabsf(acc);
    }
    double peak = q > ld->q_prev ? q : ld->q_prev; /* both intervals touching sample c */
    ld->q_prev = q;
    double need = peak > ld->ceiling ? ld->ceiling / peak : 1.0;

    /* Sliding minimum over the last L+1 required gains. */
    while (ld->dq_len > 0 && ld->r_val[(ld->dq_head + ld->dq_len - 1) % ld->dq_cap] >= need)
        ld->dq_len--;
    ld->r_val[(ld->dq_head + ld->dq_len) % ld->dq_cap] = need;
    ld->r_idx[(ld->dq_head + ld->dq_len) % ld->dq_cap] = c;
    ld->dq_len++;
    if (ld->r_idx[ld->dq_head] < c - ld->look) {
        ld->dq_head = (ld->dq_head + 1) % ld->dq_cap;
        ld->dq_len--;
    }
    double m = ld->r_val[ld->dq_head];

    /* Release toward 1, never above what the look-ahead asks for. */
    double e = ld->e_prev + (1 - ld->e_prev) * ld->release;
    if (m < e) e = m;
    ld->e_prev = e;
    size_t slot = (size_t)(c % (ld->look + 1) + (ld->look + 1)) % (size_t)(ld->look + 1);
    ld->e_sum += e - ld->e_ring[slot];
    ld->e_ring[slot] = e;
    double gain = ld->e_sum / (ld->look + 1);
    if (gain > 1) gain = 1;

    int64_t o = c - ld->look; /* the sample leaving now */
    if (o < 0) return 0;
    *out = (float)(ld->x[x_pos(ld, o)] * gain);
    return 1;
}

/* ---- public ---------------------------------------------------------------------------- */

koe_loudness *koe_loudness_new(int sample_rate, const koe_loudness_opts *opts, koe_error *err) {
    koe_loudness_opts o = opts ? *opts : (koe_loudness_opts){0};
    if (sample_rate < 8000 || sample_rate > 192000) {
        koe_error_set(err, KOE_ERR_INVALID, "loudness: sample rate %d is outside 8000..192000",
                      sample_rate);
        return NULL;
    }
    if (!o.target_lufs) o.target_lufs = -16;
    if (!o.ceiling_dbtp) o.ceiling_dbtp = -1;
    if (!o.lookahead_ms) o.lookahead_ms = 2;
    if (!o.release_ms) o.release_ms = 80;
    if (!(o.target_lufs >= -70 && o.target_lufs < 0) ||
        !(o.ceiling_dbtp > -30 && o.ceiling_dbtp < 0) ||
        !(o.input_lufs >= -100 && o.input_lufs <= 20) ||
        !(o.lookahead_ms > 0 && o.lookahead_ms <= 50) ||
        !(o.release_ms > 0 && o.release_ms <= 5000)) {
        koe_error_set(
            err, KOE_ERR_INVALID,
            "loudness: options out of range (target %g LUFS in -70..0, ceiling %g dBTP in "
            "-30..0, input %g LUFS, look-ahead %g ms in 0..50, release %g ms in 0..5000)",
            o.target_lufs, o.ceiling_dbtp, o.input_lufs, o.lookahead_ms, o.release_ms);
        return NULL;
    }
    koe_loudness *ld = calloc(1, sizeof *ld);
    if (!ld) {
        koe_error_set(err, KOE_ERR_NOMEM, "loudness: out of memory");
        return NULL;
    }
    ld->rate = sample_rate;
    ld->target_lufs = o.target_lufs;
    ld->ceiling = pow(10, (o.ceiling_dbtp - TP_MARGIN_DB) / 20);
    ld->input_lufs = o.input_lufs;
    meter_init(&ld->in, sample_rate);
    meter_init(&ld->pre, sample_rate);
    meter_init(&ld->out, sample_rate);
    ld->gain_up = 1 - exp(-1.0 / (GAIN_UP_S * sample_rate));
    ld->gain_down = 1 - exp(-1.0 / (GAIN_DOWN_S * sample_rate));
    if (o.input_lufs) {
        ld->gain_db = ld->gain_target_db = o.target_lufs - o.input_lufs;
        ld->gain_set = 1;
    } else {
        ld->gain_db = ld->gain_target_db = o.target_lufs - ASSUMED_INPUT_LUFS;
    }
    ld->look = (int)ceil(o.lookahead_ms * 1e-3 * sample_rate);
    if (ld->look < 1) ld->look = 1;
    ld->delay = (size_t)(ld->look + OS_HALF);
    ld->xlen = ld->delay + OS_HALF + 2;
    ld->dq_cap = (size_t)ld->look + 2;
    ld->release = 1 - exp(-1.0 / (o.release_ms * 1e-3 * sample_rate));
    ld->x = calloc(2 * ld->xlen, sizeof *ld->x);
    ld->r_val = calloc(ld->dq_cap, sizeof *ld->r_val);
    ld->r_idx = calloc(ld->dq_cap, sizeof *ld->r_idx);
    ld->e_ring = calloc((size_t)ld->look + 1, sizeof *ld->e_ring);
    ld->scratch = malloc((size_t)(EST_PIECE_S * sample_rate) * sizeof *ld->scratch);
    if (!ld->x || !ld->r_val || !ld->r_idx || !ld->e_ring || !ld->scratch) {
        koe_loudness_free(ld);
        koe_error_set(err, KOE_ERR_NOMEM, "loudness: out of memory");
        return NULL;
    }
    for (int i = 0; i <= ld->look; i++) ld->e_ring[i] = 1;
    ld->e_sum = ld->look + 1;
    ld->e_prev = 1;
    design_interp(ld);
    return ld;
}

void koe_loudness_free(koe_loudness *ld) {
    if (!ld) return;
    free(ld->x);
    free(ld->r_val);
    free(ld->r_idx);
    free(ld->e_ring);
    free(ld->scratch);
    free(ld);
}

size_t koe_loudness_delay(const koe_loudness *ld) {
    return ld->delay;
}

double koe_loudness_gain_db(const koe_loudness *ld) {
    return ld->gain_db;
}

double koe_loudness_input_lufs(const koe_loudness *ld) {
    return ld->input_lufs ? ld->input_lufs : ld->estimate ? ld->estimate : ASSUMED_INPUT_LUFS;
}

static double clamp_gain(double g) {
    return g > MAX_GAIN_DB ? MAX_GAIN_DB : g < -MAX_GAIN_DB ? -MAX_GAIN_DB : g;
}

/* Gains one piece and runs it through the limiter (both smoothing and limiter as process() does),
 * starting from the current state; writes the limited samples to out (k + delay of them). */
static size_t shape_piece(koe_loudness *ld, const float *in, size_t k, float *gained, float *out) {
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        double step = ld->gain_target_db - ld->gain_db;
        ld->gain_db += step * (step > 0 ? ld->gain_up : ld->gain_down);
        float v = in[i]; /* read before out[w] may overwrite it (in place) */
        if (!isfinite(v)) v = 0;
        v *= (float)pow(10, ld->gain_db / 20);
        gained[i] = v;
        if (limiter_push(ld, v, &out[w])) w++;
    }
    return w;
}

/* Loudness (dB) the limiter would take from this piece at gain g, found on a copy of the state:
 * before any output has been measured, this is the only way to know it. 0 if out of memory. */
static double trial_loss(const koe_loudness *ld, const float *in, size_t k, double g, int jump) {
    koe_loudness *t = malloc(sizeof *t);
    float *gained = malloc(k * sizeof *gained), *out = malloc((k + ld->delay) * sizeof *out);
    float *x = malloc(2 * ld->xlen * sizeof *x);
    double *r_val = malloc(ld->dq_cap * sizeof *r_val),
           *e_ring = malloc(((size_t)ld->look + 1) * sizeof *e_ring);
    int64_t *r_idx = malloc(ld->dq_cap * sizeof *r_idx);
    double loss = 0;
    if (t && gained && out && x && r_val && e_ring && r_idx) {
        *t = *ld;
        t->x = memcpy(x, ld->x, 2 * ld->xlen * sizeof *x);
        t->r_val = memcpy(r_val, ld->r_val, ld->dq_cap * sizeof *r_val);
        t->r_idx = memcpy(r_idx, ld->r_idx, ld->dq_cap * sizeof *r_idx);
        t->e_ring = memcpy(e_ring, ld->e_ring, ((size_t)ld->look + 1) * sizeof *e_ring);
        t->gain_target_db = g;
        if (jump) t->gain_db = g;
        size_t w = shape_piece(t, in, k, gained, out);
        while (w < k) { /* the samples still in the look-ahead */
            float v;
            if (limiter_push(t, 0.0f, &v)) out[w++] = v;
        }
        meter_init(&t->pre, ld->rate);
        meter_init(&t->out, ld->rate);
        measure(&t->pre, gained, k);
        measure(&t->out, out, w);
        if (t->pre.total > 0 && t->out.total > 0) loss = 10 * log10(t->pre.total / t->out.total);
    }
    free(t);
    free(gained);
    free(out);
    free(x);
    free(r_val);
    free(e_ring);
    free(r_idx);
    return loss;
}

/* Sets the gain for the next piece (in, k): target minus the input estimate, plus a make-up for
 * what the limiter takes away (bounded: a limiter working harder than that is squashing). */
static void update_target(koe_loudness *ld, const float *in, size_t k) {
    double est = ld->input_lufs ? ld->input_lufs : current_estimate(&ld->in);
    if (!est) return;
    ld->estimate = est;
    double g = clamp_gain(ld->target_lufs - est), makeup = 0;
    int jump = !ld->gain_set; /* nothing audible was shaped by an estimate yet: start right */
    if (ld->pre.recent_sum > 0 && ld->out.recent_sum > 0 && ld->out.subs_done >= 4) {
        makeup = 10 * log10(ld->pre.recent_sum / ld->out.recent_sum);
    } else if (k >= (size_t)ld->rate / 10) {
        /* Only for pieces long enough to say something (a segment, not a 20 ms buffer); twice,
         * since the make-up itself makes the limiter work harder. */
        makeup = trial_loss(ld, in, k, g, jump);
        makeup = trial_loss(
            ld, in, k, clamp_gain(g + (makeup > MAX_MAKEUP_DB ? MAX_MAKEUP_DB : makeup)), jump);
    }
    makeup = makeup < 0 ? 0 : makeup > MAX_MAKEUP_DB ? MAX_MAKEUP_DB : makeup;
    ld->gain_target_db = clamp_gain(g + makeup);
    if (jump) {
        ld->gain_db = ld->gain_target_db;
        ld->gain_set = 1;
    }
}

int koe_loudness_process(koe_loudness *ld, const float *in, size_t n, float *out, size_t out_cap,
                         size_t *produced, koe_error *err) {
    if (produced) *produced = 0;
    if (!ld || !produced || (n && (!in || !out)))
        return koe_error_set(err, KOE_ERR_INVALID, "loudness: NULL argument");
    if (out_cap < n)
        return koe_error_set(err, KOE_ERR_INVALID, "loudness: output room %zu below %zu samples",
                             out_cap, n);
    size_t piece = (size_t)(EST_PIECE_S * ld->rate), w = 0;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < piece ? n - done : piece;
        measure(&ld->in, in + done, k);
        update_target(ld, in + done, k);
        size_t w0 = w;
        w += shape_piece(ld, in + done, k, ld->scratch, out + w);
        /* The limiter's loss is only of interest at an estimated gain; what it did to audio
         * shaped by the assumed gain would skew the make-up for seconds. */
        if (ld->gain_set) {
            measure(&ld->pre, ld->scratch, k);
            measure(&ld->out, out + w0, w - w0);
        }
        done += k;
    }
    ld->n_in += (int64_t)n;
    ld->n_out += (int64_t)w;
    *produced = w;
    return 0;
}

int koe_loudness_flush(koe_loudness *ld, float *out, size_t out_cap, size_t *produced,
                       koe_error *err) {
    if (produced) *produced = 0;
    if (!ld || !produced || !out)
        return koe_error_set(err, KOE_ERR_INVALID, "loudness: NULL argument");
    size_t left = (size_t)(ld->n_in - ld->n_out);
    if (out_cap < left)
        return koe_error_set(err, KOE_ERR_INVALID, "loudness: output room %zu below %zu samples",
                             out_cap, left);
    size_t w = 0;
    while (w < left) {
        float v;
        if (limiter_push(ld, 0.0f, &v)) out[w++] = v;
    }
    ld->n_out += (int64_t)w;
    *produced = w;
    return 0;
}

int koe_loudness_measure(const float *pcm, size_t n, int sample_rate, double *lufs,
                         double *true_peak_dbtp, koe_error *err) {
    if (n && !pcm) return koe_error_set(err, KOE_ERR_INVALID, "loudness measure: NULL samples");
    if (sample_rate < 8000 || sample_rate > 192000)
        return koe_error_set(err, KOE_ERR_INVALID, "loudness measure: bad sample rate %d",
                             sample_rate);
    ebur128_state *st =
        ebur128_init(1, (unsigned long)sample_rate, EBUR128_MODE_I | EBUR128_MODE_TRUE_PEAK);
    if (!st) return koe_error_set(err, KOE_ERR_NOMEM, "loudness measure: ebur128_init failed");
    int rc = 0;
    for (size_t done = 0; done < n && rc == 0;) {
        size_t k = n - done < 65536 ? n - done : 65536;
        if (ebur128_add_frames_float(st, pcm + done, k) != EBUR128_SUCCESS)
            rc = koe_error_set(err, KOE_ERR_INTERNAL, "loudness measure: adding frames failed");
        done += k;
    }
    double l = -HUGE_VAL, tp = 0;
    if (rc == 0 && lufs && ebur128_loudness_global(st, &l) != EBUR128_SUCCESS)
        rc = koe_error_set(err, KOE_ERR_INTERNAL, "loudness measure: integration failed");
    if (rc == 0 && true_peak_dbtp && ebur128_true_peak(st, 0, &tp) != EBUR128_SUCCESS)
        rc = koe_error_set(err, KOE_ERR_INTERNAL, "loudness measure: true peak failed");
    ebur128_destroy(&st);
    if (rc != 0) return rc;
    if (lufs) *lufs = l;
    if (true_peak_dbtp) *true_peak_dbtp = tp > 0 ? 20 * log10(tp) : -HUGE_VAL;
    return 0;
}
