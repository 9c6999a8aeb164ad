/* Kokoro's prosody predictor (`predictor.*`), in two calls because the frame count F is only
 * known once the durations are:
 *   1. koe_predictor_durations: duration encoder (LSTM + AdaLayerNorm ×3), predictor.lstm,
 *      duration_proj, durations (sigmoid sum / speed, round half to even, at least 1) → F;
 *   2. koe_predictor_f0n: alignment of the duration encoder output to frames (`en`), the
 *      predictor.shared LSTM, the F0 and N AdainResBlk1d stacks and F0_proj / N_proj.
 * Plus the alignment helper the caller uses for `asr` = t_en expanded to frames.
 *
 * A koe_predictor is built once from a koe_tensor_lookup (widths from tensor shapes), read-only
 * afterwards and shareable between threads; runs take the caller's pool and scratch. */
#ifndef KOE_MODEL_PREDICTOR_H
#define KOE_MODEL_PREDICTOR_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"
#include "koe/model.h"
#include "model/generator.h" /* koe_tensor_lookup */
#include "model/pool.h"

/* Upper bound on F accepted by koe_predictor_durations (about 7 hours of audio). */
#define KOE_PREDICTOR_MAX_FRAMES (1 << 20)

typedef struct koe_predictor koe_predictor;

koe_predictor *koe_predictor_new(koe_tensor_lookup lookup, void *user, koe_error *err);
void koe_predictor_free(koe_predictor *p);

int koe_predictor_width(const koe_predictor *p); /* H (512 full) */
int koe_predictor_style(const koe_predictor *p); /* st = 128 (the s_pro half of ref_s) */

/* ---- step 1: durations ------------------------------------------------------------------- */
size_t koe_predictor_dur_scratch_floats(const koe_predictor *p, int T, koe_pool *pool);

/* d_en: [T, H] time-major (koe_albert_run's output); s_pro: [st] = ref_s[128:]; speed > 0.
 * Outputs: d: [T, H + st] (the duration encoder output, input of step 2), pred_dur: [T] frames
 * per token (≥ 1), *frames = F = Σ pred_dur. The tap sees "pred_text_enc" [1,T,H+st],
 * "pred_lstm" [1,T,H], "dur_logits" [1,T,50], "duration" [1,T], "pred_dur" [T] (as float).
 * Returns 0, KOE_ERR_INVALID (bad T or speed) or KOE_ERR_LIMIT (F > KOE_PREDICTOR_MAX_FRAMES). */
int koe_predictor_durations(const koe_predictor *p, koe_pool *pool, float *scratch,
                            const float *d_en, int T, const float *s_pro, float speed,
                            const koe_stage_tap *tap, float *d, int32_t *pred_dur, int *frames,
                            koe_error *err);

/* ---- step 2: F0 and N -------------------------------------------------------------------- */
size_t koe_predictor_f0n_scratch_floats(const koe_predictor *p, int T, int frames, koe_pool *pool);

/* d, pred_dur, frames: step 1's outputs; f0, n: [2·frames] each (F0_pred in Hz, N_pred). The
 * tap sees "en" [1,H+st,F], "F0_pred" [1,2F], "N_pred" [1,2F]. cancel (may be NULL) is polled
 * between blocks (KOE_ERR_CANCELLED). */
int koe_predictor_f0n(const koe_predictor *p, koe_pool *pool, float *scratch, const float *d, int T,
                      const int32_t *pred_dur, int frames, const float *s_pro,
                      const koe_stage_tap *tap, volatile const int *cancel, float *f0, float *n,
                      koe_error *err);

/* ---- alignment --------------------------------------------------------------------------- */
/* Expands channel-major x [C, T] to y [C, F] (F = Σ dur): frame j takes the column of the token
 * whose cumulative duration range holds j. This is `asr` from t_en (and `en` from dᵀ). */
void koe_align_expand(const float *x, int C, int T, const int32_t *dur, float *y);

#endif
