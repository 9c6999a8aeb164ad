/* The Kokoro iSTFTNet generator (`decoder.generator`): harmonic source, STFT, the two upsampling
 * stages with their noise branches and AdaIN resblocks, conv_post and the iSTFT.
 *
 * A koe_generator holds weights prepared once (weight norm folded, convolutions packed); it is
 * read-only afterwards and may be shared by any number of threads. Each run takes the caller's
 * pool and scratch, and never allocates. Widths come from the tensor shapes (W2 = ups.0 input
 * channels), so the tiny test model and the full model load alike. */
#ifndef KOE_MODEL_GENERATOR_H
#define KOE_MODEL_GENERATOR_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"
#include "koe/model.h"
#include "model/pool.h"

typedef struct koe_generator koe_generator;

/* How the constructor reads tensors: returns the float32 data of `name` (a full state-dict name
 * such as "decoder.generator.ups.0.weight_v") and sets *ndim and shape[0..ndim-1] (ndim ≤ 4),
 * or returns NULL when the tensor is absent. The data need only stay valid during the call. */
typedef const float *(*koe_tensor_lookup)(void *user, const char *name, int *ndim,
                                          int64_t shape[4]);

/* Checks presence and shape of every decoder.generator.* tensor; the error names the tensor. */
koe_generator *koe_generator_new_lookup(koe_tensor_lookup lookup, void *user, koe_error *err);
/* The same with the convolutions in reduced precision: prec KOE_CONV_BF16 (every convolution)
 * or KOE_CONV_INT8 (int8 where generator.c says it is safe, bf16 elsewhere); see ops_conv.h. */
koe_generator *koe_generator_new_prec(koe_tensor_lookup lookup, void *user, int prec,
                                      koe_error *err);
void koe_generator_free(koe_generator *g);

/* W2: channels of the generator input (512 in the full model). */
int koe_generator_width(const koe_generator *g);
/* Samples of audio for frames2 (= 2F) input steps: 300 · frames2. */
int64_t koe_generator_samples(int frames2);
/* Scratch (in floats) a run over frames2 input steps needs with this pool (NULL = 1 thread). */
size_t koe_generator_scratch_floats(const koe_generator *g, int frames2, koe_pool *pool);
/* Multiply-accumulates of one run's convolutions as direct convolutions (the model's nominal
 * cost), and as really computed (fewer where the frequency-domain path is used). */
double koe_generator_macs(const koe_generator *g, int frames2);
double koe_generator_macs_computed(const koe_generator *g, int frames2);

/* x: [W2, frames2] generator input; f0: [frames2] F0_pred (Hz); s_dec: 128 floats (ref_s[:128]);
 * audio: S = 300·frames2 samples. The tap (may be NULL) sees "har_source", "har_spec",
 * "har_phase", "conv_post" and "audio". cancel (may be NULL) is polled between layers; a set
 * flag makes the run return KOE_ERR_CANCELLED. */
int koe_generator_run(const koe_generator *g, koe_pool *pool, float *scratch, const float *x,
                      int frames2, const float *f0, const float *s_dec, koe_noise noise,
                      const koe_stage_tap *tap, volatile const int *cancel, float *audio,
                      koe_error *err);

/* The same from a given STFT of the harmonic source (har_spec, har_phase: [11, S/5 + 1]) — how
 * the reference vectors check the generator on its own. */
int koe_generator_run_from_har(const koe_generator *g, koe_pool *pool, float *scratch,
                               const float *x, int frames2, const float *har_spec,
                               const float *har_phase, const float *s_dec, const koe_stage_tap *tap,
                               volatile const int *cancel, float *audio, koe_error *err);

/* The pieces, exposed for tests. har_source: [S] from f0 [frames2] (l_linear weights of g);
 * allocates a small table (returns KOE_ERR_NOMEM if that fails, else 0). */
int koe_generator_har_source(const koe_generator *g, const float *f0, int frames2, koe_noise noise,
                             float *har_source);
/* STFT (n_fft 20, hop 5, periodic Hann, reflect pad 10, onesided) of x [n] (n a multiple of 5,
 * n ≥ 11): spec and phase [11, n/5 + 1]. */
void koe_stft20(const float *x, int64_t n, float *spec, float *phase);
/* Inverse: log-magnitudes and phase pre-sines [22, frames] (conv_post's output) → audio
 * [5·(frames − 1)] (mag = exp, phase = sin, as Kokoro's generator does). */
void koe_istft20(const float *post, int64_t frames, float *audio);

#endif
