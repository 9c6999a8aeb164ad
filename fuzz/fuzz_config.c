/* Fuzz target: the Kokoro config.json parser (koe_kokoro_config_parse) on any bytes, and the
 * file loader on the same bytes through a memory file. The input is not NUL-terminated, so a
 * read past its length shows up under ASan. A failure must say why and leave the defaults; a
 * success must hold only values the engine accepts (the bounds and the istftnet of Kokoro's
 * generator); loading the same bytes from a file must give the same answer. */
#define _GNU_SOURCE
#include "model/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in(int v, int lo, int hi) {
    return v >= lo && v <= hi;
}

/* What a successful parse promises (config.c's bounds and its generator check). */
static int valid(const koe_kokoro_config *c) {
    koe_kokoro_config d;
    koe_kokoro_config_default(&d);
    return in(c->hidden_dim, 1, 8192) && c->style_dim == 128 && in(c->n_token, 1, 65536) &&
           in(c->max_dur, 1, 10000) && in(c->n_layer, 1, 64) &&
           in(c->text_encoder_kernel_size, 1, 63) && in(c->plbert.hidden_size, 1, 8192) &&
           in(c->plbert.num_attention_heads, 1, 64) &&
           c->plbert.hidden_size % c->plbert.num_attention_heads == 0 &&
           in(c->plbert.intermediate_size, 1, 65536) &&
           in(c->plbert.max_position_embeddings, 3, 65536) &&
           in(c->plbert.num_hidden_layers, 1, 64) &&
           in(c->istftnet.upsample_initial_channel, 1, 65536) &&
           !memcmp(c->istftnet.upsample_rates, d.istftnet.upsample_rates,
                   sizeof d.istftnet.upsample_rates) &&
           !memcmp(c->istftnet.upsample_kernel_sizes, d.istftnet.upsample_kernel_sizes,
                   sizeof d.istftnet.upsample_kernel_sizes) &&
           !memcmp(c->istftnet.resblock_kernel_sizes, d.istftnet.resblock_kernel_sizes,
                   sizeof d.istftnet.resblock_kernel_sizes) &&
           !memcmp(c->istftnet.resblock_dilation_sizes, d.istftnet.resblock_dilation_sizes,
                   sizeof d.istftnet.resblock_dilation_sizes) &&
           c->istftnet.gen_istft_n_fft == d.istftnet.gen_istft_n_fft &&
           c->istftnet.gen_istft_hop_size == d.istftnet.gen_istft_hop_size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0; /* the real file is ~3 KB; the 1 MiB cap is a unit test's job */
    koe_kokoro_config c;
    koe_error err = {0};
    int rc = koe_kokoro_config_parse((const char *)data, size, &c, &err);
    if (rc) {
        if (strncmp(err.msg, "config: ", 8)) abort(); /* a failure names the config and why */
    } else if (!valid(&c)) {
        abort();
    }

    int fd = memfd_create("koe-fuzz-config", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    koe_kokoro_config f;
    koe_error ferr = {0};
    int frc = koe_kokoro_config_load(path, &f, &ferr);
    close(fd);
    if (!frc != !rc) abort(); /* the file and the text agree */
    if (!rc && memcmp(&c, &f, sizeof c)) abort();
    if (rc && !strstr(ferr.msg, err.msg)) abort(); /* the same error, prefixed by the path */
    return 0;
}
