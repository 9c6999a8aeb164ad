/* koe random-weights: full-size random Kokoro weights for benchmarks (see weights_random.c). */
#include "cli/commands.h"
#include "koe/weights.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: koe random-weights --out FILE [--config CONFIG.json] [--seed N]\n"
               "\n"
               "Writes every tensor of the Kokoro-82M checkpoint (official names and shapes) with\n"
               "random values: the engine's full cost, realistic durations (~12 tokens per\n"
               "second) and pitch (100-250 Hz), no speech. For benchmarks. FILE ending in .pth\n"
               "gets the official PyTorch layout, anything else safetensors. Default seed: 1.\n");
}

int koe_cmd_random_weights(int argc, char **argv) {
    const char *out = NULL, *config = NULL;
    uint64_t seed = 1;
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"config", required_argument, 0, 'c'},
                                             {"seed", required_argument, 0, 's'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "o:c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            out = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 's': {
            unsigned long long v;
            if (koe_cli_seed("random-weights", optarg, &v)) return KOE_EXIT_USAGE;
            seed = v;
            break;
        }
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (!out || optind < argc) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    koe_error err = {0};
    if (koe_weights_write_random(out, config, seed, &err)) {
        fprintf(stderr, "koe random-weights: %s\n", err.msg);
        return KOE_EXIT_FAIL;
    }
    printf("%s: random Kokoro-82M weights (seed %" PRIu64 ")\n", out, seed);
    return KOE_EXIT_OK;
}
