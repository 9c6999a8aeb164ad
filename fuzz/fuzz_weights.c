/* Fuzz target: the checkpoint readers (zip, pickle subset, safetensors) on any bytes. The input
 * goes to a memory file because koe_weights_open takes a path (it mmaps). Every tensor a
 * successful open returns is read end to end, so a bad bound shows up under ASan. */
#define _GNU_SOURCE
#include "koe/weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("koe-fuzz-weights", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    koe_error err = {0};
    koe_weights *w = koe_weights_open(path, &err);
    if (w) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < koe_weights_count(w); i++) {
            const koe_tensor *t = koe_weights_at(w, i);
            for (size_t k = 0; k < t->nbytes; k += 61) sink ^= ((const unsigned char *)t->data)[k];
            int nd;
            int64_t sh[4];
            koe_weights_lookup(w, t->name, &nd, sh);
        }
        (void)sink;
        koe_weights_close(w);
    } else if (!err.msg[0]) {
        abort(); /* a failure must say why */
    }
    close(fd);
    return 0;
}
