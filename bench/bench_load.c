/* bench_load: time to open a full-size checkpoint and touch every tensor through the model's
 * lookup (the file mmapped, tensors in place). Without FILE it writes full-size random weights
 * in both formats (.pth in the official layout, and safetensors) and times each. Median of RUNS
 * runs; the file is in the page cache (just written), as on a server restart.
 *
 *   bench_load [FILE] [RUNS] */
#include "koe/base.h"
#include "koe/weights.h"

#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int bench(const char *path, int runs) {
    double t[100], sum = 0;
    size_t count = 0;
    koe_error err = {0};
    for (int r = 0; r < runs; r++) {
        double t0 = koe_now_s();
        koe_weights *w = koe_weights_open(path, &err);
        if (!w) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return 1;
        }
        count = koe_weights_count(w);
        for (size_t i = 0; i < count; i++) {
            int nd;
            int64_t sh[4];
            const float *x = koe_weights_lookup(w, koe_weights_at(w, i)->name, &nd, sh);
            if (x) sum += x[0]; /* touch the data */
        }
        t[r] = koe_now_s() - t0;
        koe_weights_close(w);
    }
    qsort(t, (size_t)runs, sizeof t[0], bench_cmp_double);
    printf("bench_load: %s, %zu tensors: open + every lookup, median of %d: %.1f ms (min %.1f, max "
           "%.1f) [checksum %g]\n",
           path, count, runs, t[runs / 2] * 1e3, t[0] * 1e3, t[runs - 1] * 1e3, sum);
    return 0;
}

int main(int argc, char **argv) {
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 100) runs = 5;
    if (argc > 1) return bench(argv[1], runs);
    static const char *const ext[2] = {"pth", "safetensors"};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char tmp[96];
        koe_error err = {0};
        snprintf(tmp, sizeof tmp, "/tmp/koe-bench-load-%d.%s", (int)getpid(), ext[k]);
        if (koe_weights_write_random(tmp, NULL, 1, &err)) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return 1;
        }
        rc = bench(tmp, runs);
        unlink(tmp);
    }
    return rc;
}
