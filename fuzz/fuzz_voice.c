/* Fuzz target: voice specs ("af_bella:0.7+af_sky:0.3") against a folder of two fake packs made
 * once; any spec must give a voice with finite rows or an error with a message. */
#include "koe/voice.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static koe_voices *voices(void) {
    static koe_voices *v; /* made once per fuzzing process */
    if (v) return v;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/koe-fuzz-voices-%d", (int)getpid());
    mkdir(dir, 0700);
    const char *names[] = {"af_one", "bm_two"};
    static float pack[KOE_VOICE_ROWS * KOE_VOICE_DIM];
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof pack / sizeof pack[0]; i++) pack[i] = (float)(k + 1);
        char path[128];
        snprintf(path, sizeof path, "%s/%s.bin", dir, names[k]);
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        fwrite(pack, sizeof pack, 1, f);
        fclose(f);
    }
    koe_error err = {0};
    v = koe_voices_open(dir, &err);
    if (!v) abort();
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 512) return 0;
    char spec[513];
    memcpy(spec, data, size);
    spec[size] = 0;
    koe_error err = {0};
    koe_voice *voice = koe_voice_get(voices(), spec, &err);
    if (!voice) {
        if (!err.msg[0]) abort();
        return 0;
    }
    const float *row = koe_voice_style(voice, (int)size - 3);
    for (int k = 0; k < KOE_VOICE_DIM; k++)
        if (!isfinite(row[k]) || row[k] < 1.0f - 1e-4f || row[k] > 2.0f + 1e-4f) abort();
    koe_voice_free(voice);
    return 0;
}
