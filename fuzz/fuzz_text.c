/* Fuzz target: the whole text front end (normalize + segment + phonemize + tokens) on any
 * bytes. Invalid UTF-8 must be a clean error; otherwise the spans must tile the input (the
 * coverage proof), and every token chunk must hold 1..510 ids of the vocabulary. Inputs are
 * capped at 4 KiB so that espeak-ng (the slow part) keeps the executions per second useful. */
#include "koe/error.h"
#include "koe/text.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    /* The first byte picks a language and segment sizes, so those paths are explored too. */
    static const char *langs[] = {"en-us", "en-gb", "es", "fr", "it", "pt-br", "hi", "ja"};
    koe_text_opts o = koe_text_opts_default();
    if (size > 0) {
        o.lang = langs[data[0] & 7];
        o.first_min = (size_t)(data[0] >> 3) * 4;
        o.first_max = o.first_min + 1 + (data[0] >> 5) * 40;
        data++;
        size--;
    }
    koe_error err = {0};
    koe_text_result *r = NULL;
    int rc = koe_text_process((const char *)data, size, &o, &r, &err);
    if (rc) {
        if (r) abort(); /* a failed call must not hand out a result */
        return 0;
    }
    if (koe_text_check_coverage((const char *)data, size, r->segments, &err)) abort();
    for (size_t i = 0; i < r->segments->count; i++)
        for (size_t c = 0; c < r->tokens[i].nchunks; c++) {
            const koe_token_chunk *ch = &r->tokens[i].chunks[c];
            if (ch->count < 1 || ch->count > 510) abort();
            for (size_t k = 0; k < ch->count; k++)
                if (ch->ids[k] < 1 || ch->ids[k] > 177) abort();
        }
    koe_text_result_free(r);
    return 0;
}
