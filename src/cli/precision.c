/* The engine precision the CLI commands share: KOE_PRECISION when set, else auto. */
#include "cli/commands.h"

#include <stdio.h>
#include <stdlib.h>

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
