/* koe voices: the installed Kokoro voices with their language and gender. */
#include "cli/commands.h"
#include "koe/voice.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f) {
    fprintf(f, "usage: koe voices [--dir DIR] [--json]\n"
               "\n"
               "Lists the Kokoro voice packs (default folder: $KOE_DATA_DIR/voices, else\n"
               "data/voices). Blend voices in requests as af_bella:0.7+af_sky:0.3.\n");
}

int koe_cmd_voices(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    static const struct option longopts[] = {{"dir", required_argument, 0, 'd'},
                                             {"json", no_argument, 0, 'j'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:jh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            dir = optarg;
            break;
        case 'j':
            json = 1;
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
    char buf[4096];
    if (!dir) {
        snprintf(buf, sizeof buf, "%s/voices", koe_cli_data_dir());
        dir = buf;
    }
    koe_error err = {0};
    koe_voices *v = koe_voices_open(dir, &err);
    if (!v) {
        fprintf(stderr, "koe voices: %s\n", err.msg);
        return KOE_EXIT_FAIL;
    }
    size_t n = koe_voices_count(v);
    if (json) {
        printf("{\"voices\":[");
        for (size_t i = 0; i < n; i++) /* names are [a-z0-9_]+: nothing to escape */
            printf("%s{\"name\":\"%s\",\"language\":\"%s\",\"gender\":\"%s\"}", i ? "," : "",
                   koe_voices_name(v, i), koe_voices_lang(v, i), koe_voices_gender(v, i));
        printf("]}\n");
    } else {
        printf("%-16s %-9s %s\n", "NAME", "LANGUAGE", "GENDER");
        for (size_t i = 0; i < n; i++)
            printf("%-16s %-9s %s\n", koe_voices_name(v, i), koe_voices_lang(v, i),
                   koe_voices_gender(v, i));
    }
    koe_voices_close(v);
    return KOE_EXIT_OK;
}
