/* koe_weights: the tensor table over an mmapped checkpoint (.pth, safetensors, or the reference
 * vectors' raw blob + manifest), name lookup, float views, and the used-marks that let the model
 * reject tensors it does not know. */
#include "koe/weights.h"
#include "model/weights_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct koe_weights {
    void *map;
    size_t map_len;
    koe_tensor *t;
    size_t n, cap;
    size_t *order;       /* indices sorted by name, for bsearch */
    unsigned char *used; /* one per tensor */
    void **owned;        /* bytes copied out of the mapping (strided/misaligned), or NULL */
    float **f32;         /* float32 copies of f16/bf16 tensors made by lookups, or NULL */
};

size_t koe_dtype_size(koe_dtype dt) {
    switch (dt) {
    case KOE_DT_F32:
        return 4;
    case KOE_DT_I64:
        return 8;
    default:
        return 2;
    }
}

int koe_weights_add(koe_weights *w, const char *name, koe_dtype dt, int ndim, const int64_t *shape,
                    const int64_t *strides, const void *data, koe_error *err) {
    if (ndim < 0 || ndim > 4)
        return koe_error_set(err, KOE_ERR_FORMAT, "tensor '%s' has %d dims (at most 4)", name,
                             ndim);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        koe_tensor *t = realloc(w->t, cap * sizeof *t);
        if (t) w->t = t;
        void **o = t ? realloc(w->owned, cap * sizeof *o) : NULL;
        if (o) w->owned = o;
        if (!t || !o) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        w->cap = cap;
    }
    size_t es = koe_dtype_size(dt), count = 1, nbytes = 0;
    int overflow = 0;
    for (int d = 0; d < ndim; d++)
        overflow |= shape[d] < 0 || __builtin_mul_overflow(count, (size_t)shape[d], &count);
    overflow |= __builtin_mul_overflow(count, es, &nbytes);
    /* A view may repeat elements (stride 0), but no real checkpoint holds a tensor bigger than
     * its own file: the bound keeps a crafted view from asking for terabytes. */
    if (overflow || nbytes > w->map_len)
        return koe_error_set(err, KOE_ERR_FORMAT, "tensor '%s' is larger than the file", name);
    koe_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    w->owned[w->n] = NULL;
    t->name = strdup(name);
    if (!t->name) return koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = nbytes;
    if (!strides && ((uintptr_t)data % es) == 0) {
        t->data = data; /* in place, in the mapping */
    } else {
        unsigned char *copy = malloc(t->nbytes ? t->nbytes : 1);
        if (!copy) {
            free((void *)t->name);
            return koe_error_set(err, KOE_ERR_NOMEM, "out of memory copying '%s'", name);
        }
        if (!strides) {
            memcpy(copy, data, t->nbytes);
        } else {
            /* Gather a strided view element by element into row-major order. */
            int64_t idx[4] = {0};
            for (size_t e = 0; e < count; e++) {
                int64_t off = 0;
                for (int d = 0; d < ndim; d++) off += idx[d] * strides[d];
                memcpy(copy + e * es, (const unsigned char *)data + (size_t)off * es, es);
                for (int d = ndim - 1; d >= 0; d--) {
                    if (++idx[d] < shape[d]) break;
                    idx[d] = 0;
                }
            }
        }
        t->data = copy;
        w->owned[w->n] = copy;
    }
    w->n++;
    return 0;
}

typedef struct name_index {
    const char *name;
    size_t i;
} name_index;

static int by_name(const void *a, const void *b) {
    return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

koe_weights *koe_weights_open(const char *path, koe_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        koe_error_set(err, KOE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        koe_error_set(err, KOE_ERR_IO, "%s is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size < 16) {
        koe_error_set(err, KOE_ERR_FORMAT, "%s is too short to be a checkpoint", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        koe_error_set(err, KOE_ERR_IO, "cannot map %s: %s", path, strerror(errno));
        return NULL;
    }
    koe_weights *w = calloc(1, sizeof *w);
    if (!w) {
        munmap(map, len);
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->map = map;
    w->map_len = len;
    const unsigned char *b = map;
    int rc;
    /* safetensors' JSON opens at byte 8, where a zip has its compression method (0 or 8): so a
     * header length that happens to start with "PK" is still told apart. */
    char manifest[4096];
    if (koe_raw_manifest_path(path, manifest, sizeof manifest) && !access(manifest, F_OK))
        rc = koe_raw_read(w, b, len, manifest, err); /* a headerless blob: its manifest says */
    else if (b[8] != '{' && b[0] == 'P' && b[1] == 'K')
        rc = koe_pth_read(w, b, len, err);
    else
        rc = koe_safetensors_read(w, b, len, err);
    if (!rc && w->n) {
        w->order = malloc(w->n * sizeof *w->order);
        w->used = calloc(w->n, 1);
        w->f32 = calloc(w->n, sizeof *w->f32);
        if (!w->order || !w->used || !w->f32) {
            rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
        } else {
            name_index *ni = malloc(w->n * sizeof *ni);
            if (!ni) {
                rc = koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
            } else {
                for (size_t i = 0; i < w->n; i++) ni[i] = (name_index){w->t[i].name, i};
                qsort(ni, w->n, sizeof *ni, by_name);
                for (size_t i = 0; i < w->n; i++) w->order[i] = ni[i].i;
                free(ni);
            }
            for (size_t i = 1; i < w->n && !rc; i++)
                if (!strcmp(w->t[w->order[i]].name, w->t[w->order[i - 1]].name))
                    rc = koe_error_set(err, KOE_ERR_FORMAT, "tensor '%s' appears twice",
                                       w->t[w->order[i]].name);
        }
    } else if (!rc) {
        rc = koe_error_set(err, KOE_ERR_FORMAT, "%s holds no tensors", path);
    }
    if (rc) {
        koe_error_prefix(err, "%s: ", path);
        koe_weights_close(w);
        return NULL;
    }
    return w;
}

void koe_weights_release_pages(koe_weights *w) {
    if (w && w->map) madvise(w->map, w->map_len, MADV_DONTNEED);
}

void koe_weights_close(koe_weights *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free((void *)w->t[i].name);
        free(w->owned[i]);
        if (w->f32) free(w->f32[i]);
    }
    free(w->t);
    free(w->owned);
    free(w->f32);
    free(w->order);
    free(w->used);
    if (w->map) munmap(w->map, w->map_len);
    free(w);
}

size_t koe_weights_count(const koe_weights *w) {
    return w ? w->n : 0;
}
const koe_tensor *koe_weights_at(const koe_weights *w, size_t i) {
    return w && i < w->n ? &w->t[i] : NULL;
}

static long index_of(const koe_weights *w, const char *name) {
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(w->t[w->order[mid]].name, name);
        if (!c) return (long)w->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const koe_tensor *koe_weights_find(const koe_weights *w, const char *name) {
    if (!w || !name || !w->order) return NULL;
    long i = index_of(w, name);
    if (i < 0) return NULL;
    w->used[i] = 1; /* marks are the one thing lookups change (load time, one thread) */
    return &w->t[i];
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (!man) {
            bits = sign;
        } else { /* subnormal: normalize */
            exp = 113;
            while (!(man & 1024)) man <<= 1, exp--;
            bits = sign | exp << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

const float *koe_weights_lookup(void *weights, const char *name, int *ndim, int64_t shape[4]) {
    koe_weights *w = weights;
    const koe_tensor *t = koe_weights_find(w, name);
    if (!t || t->dtype == KOE_DT_I64) return NULL;
    size_t i = (size_t)(t - w->t);
    *ndim = t->ndim;
    for (int d = 0; d < 4; d++) shape[d] = d < t->ndim ? t->shape[d] : 1;
    if (t->dtype == KOE_DT_F32) return t->data;
    if (!w->f32[i]) {
        size_t n = t->nbytes / 2;
        float *f = malloc((n ? n : 1) * sizeof *f);
        if (!f) return NULL;
        const uint16_t *h = t->data;
        for (size_t k = 0; k < n; k++) {
            if (t->dtype == KOE_DT_F16) {
                f[k] = half_to_float(h[k]);
            } else {
                uint32_t bits = (uint32_t)h[k] << 16;
                memcpy(&f[k], &bits, 4);
            }
        }
        w->f32[i] = f;
    }
    return w->f32[i];
}

const char *koe_weights_first_unused(const koe_weights *w, const char *const *ignore_prefixes) {
    if (!w) return NULL;
    for (size_t k = 0; k < w->n; k++) {
        size_t i = w->order[k];
        if (w->used[i]) continue;
        int ignored = 0;
        for (const char *const *p = ignore_prefixes; p && *p && !ignored; p++)
            ignored = !strncmp(w->t[i].name, *p, strlen(*p));
        if (!ignored) return w->t[i].name;
    }
    return NULL;
}
