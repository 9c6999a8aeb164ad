/* The reference vectors' raw form: one little-endian blob (`x.bin`) and a manifest next to it
 * (`x.manifest.json`: [{name, dtype, shape, offset, nbytes}, ...]). The blob has no header, so
 * it is recognized by its manifest. */
#include "model/weights_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MANIFEST (64u << 20)

int koe_raw_manifest_path(const char *path, char *out, size_t cap) {
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".bin")) return 0;
    return snprintf(out, cap, "%.*s.manifest.json", (int)(n - 4), path) < (int)cap;
}

static char *read_text(const char *path, koe_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        koe_error_set(err, KOE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    long size = -1;
    if (!fseek(f, 0, SEEK_END)) size = ftell(f);
    if (size < 0 || (unsigned long)size > MAX_MANIFEST || fseek(f, 0, SEEK_SET)) {
        koe_error_set(err, KOE_ERR_FORMAT, "%s: unreadable or larger than %u MB", path,
                      MAX_MANIFEST >> 20);
    } else if (!(text = malloc((size_t)size + 1))) {
        koe_error_set(err, KOE_ERR_NOMEM, "out of memory");
    } else if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        koe_error_set(err, KOE_ERR_IO, "cannot read %s", path);
        free(text);
        text = NULL;
    } else {
        text[size] = 0;
    }
    fclose(f);
    return text;
}

/* A non-negative integral JSON number below 2^53, or -1. */
static double whole(const cJSON *x) {
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9007199254740992.0 ||
        x->valuedouble != floor(x->valuedouble))
        return -1;
    return x->valuedouble;
}

int koe_raw_read(koe_weights *w, const unsigned char *buf, size_t len, const char *manifest,
                 koe_error *err) {
    char *text = read_text(manifest, err);
    if (!text) return err ? err->code : KOE_ERR_IO;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return koe_error_set(err, KOE_ERR_FORMAT, "%s is not a JSON array of tensors", manifest);
    }
    int rc = 0, i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"),
                    *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        double off = whole(cJSON_GetObjectItemCaseSensitive(e, "offset")),
               nb = whole(cJSON_GetObjectItemCaseSensitive(e, "nbytes"));
        if (!cJSON_IsString(name) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || off < 0 ||
            nb < 0) {
            rc = koe_error_set(err, KOE_ERR_FORMAT, "%s: entry %d is malformed", manifest, i);
            break;
        }
        koe_dtype t;
        if (!strcmp(dt->valuestring, "f32"))
            t = KOE_DT_F32;
        else if (!strcmp(dt->valuestring, "f16"))
            t = KOE_DT_F16;
        else if (!strcmp(dt->valuestring, "bf16"))
            t = KOE_DT_BF16;
        else if (!strcmp(dt->valuestring, "i64"))
            t = KOE_DT_I64;
        else {
            rc = koe_error_set(err, KOE_ERR_UNSUPPORTED, "tensor '%.100s' has dtype %.20s",
                               name->valuestring, dt->valuestring);
            break;
        }
        int ndim = cJSON_GetArraySize(shape);
        int64_t sh[4] = {0};
        double count = 1;
        for (int d = 0; d < ndim && d < 4; d++) {
            double v = whole(cJSON_GetArrayItem(shape, d));
            if (v < 0 || v > 1e12) count = -1;
            sh[d] = (int64_t)v;
            count *= v;
        }
        if (ndim > 4 || count < 0 || nb != count * (double)koe_dtype_size(t) ||
            off + nb > (double)len) {
            rc = koe_error_set(err, KOE_ERR_FORMAT,
                               "tensor '%.100s': shape, size and offset do not fit the blob",
                               name->valuestring);
            break;
        }
        rc = koe_weights_add(w, name->valuestring, t, ndim, sh, NULL, buf + (size_t)off, err);
        if (rc) break;
        i++;
    }
    cJSON_Delete(root);
    return rc;
}
