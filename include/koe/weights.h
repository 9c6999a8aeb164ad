/* Model checkpoints as named tensors: the official PyTorch `.pth` (a zip holding a pickle, read
 * by a data parser that executes nothing) and safetensors. The file is mmapped read-only and
 * tensors point into it wherever their layout allows; everything else is copied once.
 *
 * Names are canonical: "<part>.<key>" with PyTorch's "module." prefix removed, e.g.
 * "decoder.generator.ups.0.weight_v". A koe_weights is read-only after open, except for the
 * "used" marks and float copies made by lookups, which the model makes while it loads (one
 * thread); sharing it between threads after that is safe. */
#ifndef KOE_WEIGHTS_H
#define KOE_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "koe/error.h"

typedef enum koe_dtype { KOE_DT_F32, KOE_DT_F16, KOE_DT_BF16, KOE_DT_I64 } koe_dtype;

typedef struct koe_tensor {
    const char *name;
    koe_dtype dtype;
    int ndim; /* 0..4 */
    int64_t shape[4];
    const void *data; /* row-major, contiguous, aligned for its dtype */
    size_t nbytes;
} koe_tensor;

typedef struct koe_weights koe_weights;

/* Opens a .pth (zip + pickle) or .safetensors file, recognized by its content, or a raw
 * little-endian blob "x.bin" described by "x.manifest.json" next to it (the reference vectors'
 * form). Every tensor is checked against the file's bounds; a truncated or corrupt file is an
 * error naming the problem. */
koe_weights *koe_weights_open(const char *path, koe_error *err);
void koe_weights_close(koe_weights *w);
/* Tells the kernel the file's pages read so far are no longer needed (they are re-read from the
 * file if touched again). A model that copies and packs its weights part by part calls it after
 * each part, so that the mapping does not add the whole file to its peak memory. */
void koe_weights_release_pages(koe_weights *w);

size_t koe_weights_count(const koe_weights *w);
const koe_tensor *koe_weights_at(const koe_weights *w, size_t i);
/* NULL when absent. Marks the tensor used. */
const koe_tensor *koe_weights_find(const koe_weights *w, const char *name);

/* The koe_tensor_lookup of src/model (generator.h): float32 data of `name` (f16/bf16 converted
 * once into a copy owned by w), its ndim and shape; NULL when absent, not a float tensor, or
 * when memory for that copy runs out.
 * Marks the tensor used. `weights` is a koe_weights *. Not thread-safe (load time only). */
const float *koe_weights_lookup(void *weights, const char *name, int *ndim, int64_t shape[4]);

/* The first tensor no lookup or find has touched, skipping names that start with one of
 * ignore_prefixes (NULL-terminated list, may be NULL); NULL when every tensor was used. Lets the
 * model reject checkpoints with tensors it does not know. */
const char *koe_weights_first_unused(const koe_weights *w, const char *const *ignore_prefixes);

/* Writes full-size random Kokoro-82M weights (every tensor of the official checkpoint, official
 * names and shapes for the given config; NULL = the built-in full config) as safetensors, or,
 * when path ends in ".pth", in the official layout (a torch.save zip of {part: {"module.<key>":
 * tensor}}). Deterministic for a seed (both formats hold the same values), with biases chosen
 * so that durations and pitch are realistic (about 12 tokens per second of audio, voiced F0 of
 * 100-250 Hz). For benchmarks. */
int koe_weights_write_random(const char *path, const char *config_path, uint64_t seed,
                             koe_error *err);

#endif
