#include "pipeline/optimizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "koe/base.h"

int koe_opt_propose(const koe_opt_sample *s, size_t n, int cur, const koe_opt_bounds *b,
                    char *reason, size_t reason_cap) {
    if (reason && reason_cap) reason[0] = 0;
    double rate[64], over[64], ttfa[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++) {
        if (!s[i].first_chars || !(s[i].first_synth > 0) || !(s[i].ttfa >= s[i].first_synth))
            continue;
        rate[k] = s[i].first_synth / (double)s[i].first_chars;
        over[k] = s[i].ttfa - s[i].first_synth;
        ttfa[k] = s[i].ttfa;
        k++;
    }
    if (k == 0) return cur;
    double r = koe_median(rate, k), o = koe_median(over, k), t50 = koe_median(ttfa, k);
    double want = (b->target - o) / r;
    double lo = cur / b->max_step, hi = cur * b->max_step;
    if (want < lo) want = lo;
    if (want > hi) want = hi;
    if (want < b->lo) want = b->lo;
    if (want > b->hi) want = b->hi;
    int next = (int)lround(want);
    if (fabs((double)next - cur) <= b->deadband * cur) return cur;
    if (reason && reason_cap)
        snprintf(reason, reason_cap,
                 "TTFA p50 %.0f ms vs target %.0f ms over %zu requests: %.2f ms per character of "
                 "first segment plus %.0f ms, so first-segment-max %d -> %d",
                 t50 * 1e3, b->target * 1e3, k, r * 1e3, o * 1e3, cur, next);
    return next;
}
