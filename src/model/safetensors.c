/* safetensors: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and [begin, end) byte offsets into the data that follows. */
#include "model/weights_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20)

int koe_safetensors_read(koe_weights *w, const unsigned char *buf, size_t len, koe_error *err) {
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)buf[i] << (8 * i);
    if (hlen < 2 || hlen > MAX_HEADER || hlen > len - 8 || buf[8] != '{')
        return koe_error_set(err, KOE_ERR_FORMAT,
                             "neither a PyTorch zip checkpoint nor safetensors (bad header)");
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return koe_error_set(err, KOE_ERR_FORMAT, "safetensors header is not a JSON object");
    }
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    int rc = 0;
    for (cJSON *e = root->child; e && !rc; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
            cJSON_GetArraySize(offs) != 2) {
            rc = koe_error_set(err, KOE_ERR_FORMAT, "safetensors entry '%.100s' is malformed",
                               e->string);
            break;
        }
        koe_dtype t;
        if (!strcmp(dt->valuestring, "F32"))
            t = KOE_DT_F32;
        else if (!strcmp(dt->valuestring, "F16"))
            t = KOE_DT_F16;
        else if (!strcmp(dt->valuestring, "BF16"))
            t = KOE_DT_BF16;
        else if (!strcmp(dt->valuestring, "I64"))
            t = KOE_DT_I64;
        else {
            rc = koe_error_set(err, KOE_ERR_UNSUPPORTED, "tensor '%.100s' has dtype %.20s",
                               e->string, dt->valuestring);
            break;
        }
        int ndim = cJSON_GetArraySize(shape);
        int64_t sh[4] = {0};
        double count = 1;
        if (ndim > 4) {
            rc = koe_error_set(err, KOE_ERR_FORMAT, "tensor '%.100s' has %d dims", e->string, ndim);
            break;
        }
        for (int d = 0; d < ndim; d++) {
            cJSON *x = cJSON_GetArrayItem(shape, d);
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e12 ||
                x->valuedouble != floor(x->valuedouble)) {
                rc = koe_error_set(err, KOE_ERR_FORMAT, "tensor '%.100s' has a bad shape",
                                   e->string);
                break;
            }
            sh[d] = (int64_t)x->valuedouble;
            count *= (double)sh[d];
        }
        if (rc) break;
        double b = cJSON_GetArrayItem(offs, 0)->valuedouble,
               en = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 || en < b || b != floor(b) ||
            en > (double)data_len || en - b != count * (double)koe_dtype_size(t)) {
            rc = koe_error_set(err, KOE_ERR_FORMAT,
                               "tensor '%.100s': offsets do not match its shape or the file",
                               e->string);
            break;
        }
        rc = koe_weights_add(w, e->string, t, ndim, sh, NULL, data + (size_t)b, err);
    }
    cJSON_Delete(root);
    return rc;
}
