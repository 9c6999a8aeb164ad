/* Option values the CLI commands share, parsed one way everywhere: the data folder, --speed,
 * --seed and --precision (and KOE_PRECISION). Each parser prints a message naming the command
 * and returns -1 on a bad value, so a command only maps that to KOE_EXIT_USAGE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"

const char *koe_cli_data_dir(void) {
    const char *e = getenv("KOE_DATA_DIR");
    return e && *e ? e : "data";
}

int koe_cli_speed(const char *cmd, const char *arg, double *out) {
    char *end = NULL;
    double v = strtod(arg, &end);
    if (!*arg || *end || !(v >= 0.25 && v <= 4.0)) {
        fprintf(stderr, "koe %s: --speed wants 0.25 to 4.0\n", cmd);
        return -1;
    }
    *out = v;
    return 0;
}

int koe_cli_seed(const char *cmd, const char *arg, unsigned long long *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    /* strtoull accepts a sign and wraps "-5" to a huge number: only plain digits are a seed */
    if (*arg < '0' || *arg > '9' || *end || errno == ERANGE) {
        fprintf(stderr, "koe %s: --seed wants a number\n", cmd);
        return -1;
    }
    *out = v;
    return 0;
}

int koe_cli_precision(const char *cmd, const char *arg, koe_precision *out) {
    koe_error err = {0};
    if (koe_precision_parse(arg, out, &err)) {
        fprintf(stderr, "koe %s: --precision: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

int koe_cli_precision_from_env(const char *cmd, koe_precision *out) {
    *out = KOE_PRECISION_AUTO;
    const char *e = getenv("KOE_PRECISION");
    koe_error err = {0};
    if (e && *e && koe_precision_parse(e, out, &err)) {
        fprintf(stderr, "koe %s: KOE_PRECISION: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}
