/* koe models: which Kokoro weights koe can find, whether they are intact, and which backend
 * `koe serve` will run. Discovery order (the server's too): --model FILE, $KOE_MODEL, then the
 * data folder's kokoro-v1_0.pth ($KOE_DATA_DIR or ./data). Other *.pth and *.safetensors files
 * in the data folder are listed and checked too, but only used when named with --model. */
#include "cli/commands.h"
#include "koe/sha256.h"
#include "koe/weights.h"

#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_CANDIDATES 64

typedef struct candidate {
    char path[4096];
    const char *source; /* "--model", "KOE_MODEL", "data folder", "other file" */
    int automatic;      /* koe serve would pick it without being told */
} candidate;

static void usage(FILE *f) {
    fprintf(f,
            "usage: koe models [--model FILE] [--dir DIR] [--verify]\n"
            "\n"
            "Lists the Kokoro weights koe finds (--model, $KOE_MODEL, then the data folder),\n"
            "checks that each is a complete Kokoro-82M checkpoint, and says which backend\n"
            "`koe serve` will use. --verify recomputes each file's SHA-256 and compares it with\n"
            "the one `koe download` recorded.\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A Kokoro checkpoint has every part; a spot check of one tensor per part plus the count is
 * enough to tell it from other models (the engine checks every tensor when it loads). */
static const char *kokoro_check(const koe_weights *w) {
    static const char *const needed[] = {
        "bert.embeddings.word_embeddings.weight", "bert_encoder.weight",
        "predictor.duration_proj.linear_layer.weight", "text_encoder.embedding.weight",
        "decoder.generator.conv_post.weight_v"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!koe_weights_find(w, needed[i])) return needed[i];
    return NULL;
}

int koe_cmd_models(int argc, char **argv) {
    const char *model = NULL, *dir = NULL;
    int verify = 0;
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"dir", required_argument, 0, 'd'},
                                             {"verify", no_argument, 0, 'v'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:d:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            model = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'v':
            verify = 1;
            break;
        case 'h':
            usage(stdout);
            return KOE_EXIT_OK;
        default:
            usage(stderr);
            return KOE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    if (!dir) dir = koe_cli_data_dir();
    candidate c[MAX_CANDIDATES];
    int n = 0;
    if (model) {
        snprintf(c[n].path, sizeof c[n].path, "%s", model);
        c[n].source = "--model";
        c[n++].automatic = 1;
    }
    const char *env = getenv("KOE_MODEL");
    if (env && *env) {
        snprintf(c[n].path, sizeof c[n].path, "%s", env);
        c[n].source = "KOE_MODEL";
        c[n++].automatic = 1;
    }
    snprintf(c[n].path, sizeof c[n].path, "%s/kokoro-v1_0.pth", dir);
    struct stat st;
    if (!stat(c[n].path, &st)) {
        c[n].source = "data folder";
        c[n++].automatic = 1;
    }
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) && n < MAX_CANDIDATES;) {
        if (!strcmp(e->d_name, "kokoro-v1_0.pth") || e->d_name[0] == '.') continue;
        if (!ends_with(e->d_name, ".pth") && !ends_with(e->d_name, ".safetensors")) continue;
        snprintf(c[n].path, sizeof c[n].path, "%s/%s", dir, e->d_name);
        c[n].automatic = 0;
        c[n++].source = "in the data folder; used only when given with --model";
    }
    if (d) closedir(d);

    int chosen = -1, explicit_bad = 0;
    for (int i = 0; i < n; i++) {
        printf("%s (%s)\n", c[i].path, c[i].source);
        if (stat(c[i].path, &st)) {
            printf("  missing\n");
            if (i == 0 && model) explicit_bad = 1;
            continue;
        }
        printf("  size: %.1f MB\n", (double)st.st_size / 1e6);
        char sum_path[4200], recorded[65] = "";
        snprintf(sum_path, sizeof sum_path, "%.4096s.sha256", c[i].path);
        FILE *sf = fopen(sum_path, "r");
        if (sf) {
            if (fscanf(sf, "%64s", recorded) != 1) recorded[0] = 0;
            fclose(sf);
        }
        if (verify) {
            char hex[65];
            if (koe_sha256_file(c[i].path, hex))
                printf("  checksum: unreadable\n");
            else if (!recorded[0])
                printf("  checksum: SHA-256 %s (nothing recorded to compare with)\n", hex);
            else
                printf("  checksum: %s\n", strcmp(hex, recorded)
                                               ? "MISMATCH with the download record"
                                               : "matches the download record");
        } else {
            printf("  checksum: %s\n", recorded[0] ? "recorded at download (--verify to recheck)"
                                                   : "not recorded (not fetched by koe download)");
        }
        koe_error err = {0};
        koe_weights *w = koe_weights_open(c[i].path, &err);
        if (!w) {
            printf("  refused: %s\n", err.msg);
            if (i == 0 && model) explicit_bad = 1;
            continue;
        }
        const char *missing = kokoro_check(w);
        if (missing) {
            printf("  refused: not a Kokoro-82M checkpoint (no %s)\n", missing);
            if (i == 0 && model) explicit_bad = 1;
        } else {
            printf("  Kokoro-82M checkpoint, %zu tensors\n", koe_weights_count(w));
            if (chosen < 0 && c[i].automatic) chosen = i;
        }
        koe_weights_close(w);
    }
    if (n == 0) printf("no weights found in %s\n", dir);
    if (chosen >= 0)
        printf("\nkoe serve will run the Kokoro engine on %s\n", c[chosen].path);
    else
        printf("\nkoe serve will speak with the espeak-ng voice: put kokoro-v1_0.pth in %s (koe "
               "download fetches it) or pass --model FILE\n",
               dir);
    return explicit_bad ? KOE_EXIT_FAIL : KOE_EXIT_OK;
}
