/* The koe subcommands: each lives in its own cmd_<name>.c and returns the exit status
 * (0 ok, 1 failure while working, 2 bad usage or bad input). */
#ifndef KOE_CLI_COMMANDS_H
#define KOE_CLI_COMMANDS_H

#include "koe/model.h"

typedef int (*koe_cmd_fn)(int argc, char **argv);

typedef struct koe_command {
    const char *name;
    koe_cmd_fn run;
    const char *summary;
} koe_command;

/* Exit statuses shared by every subcommand. */
enum { KOE_EXIT_OK = 0, KOE_EXIT_FAIL = 1, KOE_EXIT_USAGE = 2 };

int koe_cmd_phonemize(int argc, char **argv);
int koe_cmd_model_check(int argc, char **argv);
int koe_cmd_synth(int argc, char **argv);
int koe_cmd_random_weights(int argc, char **argv);
int koe_cmd_voices(int argc, char **argv);
int koe_cmd_serve(int argc, char **argv);
int koe_cmd_download(int argc, char **argv);
int koe_cmd_models(int argc, char **argv);
int koe_cmd_say(int argc, char **argv);
int koe_cmd_bench(int argc, char **argv);

/* Shared option values (options.c). The parsers print a message naming cmd and return -1 on a
 * bad value, else store it and return 0. */
const char *koe_cli_data_dir(void); /* $KOE_DATA_DIR when set and not empty, else "data" */
int koe_cli_speed(const char *cmd, const char *arg, double *out);            /* 0.25 to 4.0 */
int koe_cli_seed(const char *cmd, const char *arg, unsigned long long *out); /* plain digits */
int koe_cli_precision(const char *cmd, const char *arg, koe_precision *out);
/* KOE_PRECISION when set (a bad value: a message naming cmd, and -1), else auto. */
int koe_cli_precision_from_env(const char *cmd, koe_precision *out);

#endif
