/* koe: one binary, subcommands. */
#include "cli/commands.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Each entry links to its cmd_*.c; weak so a subcommand whose file is not built yet reports
 * that clearly instead of breaking the build. */
#define KOE_WEAK __attribute__((weak))
KOE_WEAK int koe_cmd_phonemize(int argc, char **argv);
KOE_WEAK int koe_cmd_model_check(int argc, char **argv);
KOE_WEAK int koe_cmd_synth(int argc, char **argv);
KOE_WEAK int koe_cmd_random_weights(int argc, char **argv);
KOE_WEAK int koe_cmd_voices(int argc, char **argv);
KOE_WEAK int koe_cmd_serve(int argc, char **argv);
KOE_WEAK int koe_cmd_download(int argc, char **argv);
KOE_WEAK int koe_cmd_models(int argc, char **argv);
KOE_WEAK int koe_cmd_say(int argc, char **argv);
KOE_WEAK int koe_cmd_bench(int argc, char **argv);

static const koe_command commands[] = {
    {"serve", koe_cmd_serve, "run the speech server (OpenAI-compatible HTTP API)"},
    {"say", koe_cmd_say, "speak text: play it, write a file (-o) or pipe it"},
    {"synth", koe_cmd_synth, "synthesize text to an audio file"},
    {"voices", koe_cmd_voices, "list the installed voices"},
    {"phonemize", koe_cmd_phonemize, "show segments, phonemes and token ids of a text"},
    {"model-check", koe_cmd_model_check, "check the engine against a reference case"},
    {"random-weights", koe_cmd_random_weights, "write full-size random Kokoro weights"},
    {"download", koe_cmd_download, "fetch the official Kokoro weights (verified, resumable)"},
    {"models", koe_cmd_models, "list the Kokoro weights found and the backend koe serve will use"},
    {"bench", koe_cmd_bench, "time speech on this machine (time to first audio, real-time factor)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: koe <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].run) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'koe <command> --help' describes each command.\n");
}

int main(int argc, char **argv) {
    /* A vanished reader must surface as a write error, never kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return KOE_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return KOE_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("koe %s\n", KOE_VERSION);
        return KOE_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].run) {
            fprintf(stderr, "koe: '%s' is not available in this build\n", argv[1]);
            return KOE_EXIT_FAIL;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "koe: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return KOE_EXIT_USAGE;
}
