#include "pipeline/optimizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "koe/base.h"

/* Median synthesis time over audio length of the first segments (0 when none says). */
static double first_rtf(const koe_opt_sample *s, size_t n) {
    double r[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++)
        if (s[i].first_audio > 0 && s[i].first_synth > 0)
            r[k++] = s[i].first_synth / s[i].first_audio;
    return k ? koe_median(r, k) : 0;
}

int koe_opt_propose(const koe_opt_sample *s, size_t n, int cur, double *ramp,
                    const koe_opt_bounds *b, koe_opt_state *st, char *reason, size_t reason_cap) {
    if (reason && reason_cap) reason[0] = 0;
    if (n == 0) return cur;
    koe_opt_state none = {0};
    if (!st) st = &none;
    int floor = st->floor_left > 0 ? st->floor : 0;
    if (st->floor_left > 0) st->floor_left--;
    size_t with_next = 0, starved = 0;
    for (size_t i = 0; i < n; i++) {
        with_next += s[i].has_next != 0;
        starved += s[i].has_next && s[i].starved;
    }
    double rho = first_rtf(s, n);
    int tune_ramp = ramp && b->ramp_hi > b->ramp_lo && b->ramp_lo >= 1;
    if (starved > 0 && starved * 10 > with_next && tune_ramp && rho * *ramp > 0.8 &&
        *ramp > b->ramp_lo + 1e-9) {
        double was = *ramp, next = was / 1.25;
        if (next > 0.8 / rho) next = 0.8 / rho;
        if (next < b->ramp_lo) next = b->ramp_lo;
        *ramp = next;
        if (reason && reason_cap)
            snprintf(reason, reason_cap,
                     "%zu of %zu streams ran dry after their first segment, whose synthesis took "
                     "%.2f of its audio's length: a next segment %.2f times longer cannot be ready "
                     "in time, so segment-ramp %.2f -> %.2f",
                     starved, with_next, rho, was, was, next);
        return cur;
    }
    if (starved > 0 && starved * 10 > with_next) {
        int next = (int)ceil(cur * b->max_step);
        if (next > b->hi) next = b->hi;
        if (next <= cur) return cur;
        st->floor = next;
        st->floor_left = KOE_OPT_FLOOR_DECISIONS;
        if (reason && reason_cap)
            snprintf(reason, reason_cap,
                     "%zu of %zu streams ran dry after their first segment: it is too short for "
                     "the next one's synthesis, so first-segment-max %d -> %d (a floor for the "
                     "next %d decisions)",
                     starved, with_next, cur, next, KOE_OPT_FLOOR_DECISIONS);
        return next;
    }
    double rate[64], over[64], ttfa[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++) {
        if (!s[i].first_chars || !(s[i].first_synth > 0) || !(s[i].ttfa >= s[i].first_synth))
            continue;
        rate[k] = s[i].first_synth / (double)s[i].first_chars;
        over[k] = s[i].ttfa - s[i].first_synth - (s[i].queue_wait > 0 ? s[i].queue_wait : 0);
        if (over[k] < 0) over[k] = 0;
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
    if (want < floor) want = floor;
    if (starved > 0 && want < cur) want = cur;
    int next = (int)lround(want);
    if (fabs((double)next - cur) <= b->deadband * cur) {
        if (tune_ramp && !starved && rho > 0 && *ramp < b->ramp_hi - 1e-9 &&
            rho * *ramp * 1.25 < 0.5) {
            double was = *ramp;
            *ramp = was * 1.25 < b->ramp_hi ? was * 1.25 : b->ramp_hi;
            if (reason && reason_cap)
                snprintf(reason, reason_cap,
                         "first segments synthesize in %.2f of their audio's length and no stream "
                         "ran dry: segment-ramp %.2f -> %.2f",
                         rho, was, *ramp);
        }
        return cur;
    }
    if (reason && reason_cap)
        snprintf(reason, reason_cap,
                 "TTFA p50 %.0f ms vs target %.0f ms over %zu requests: %.2f ms per character of "
                 "first segment plus %.0f ms, so first-segment-max %d -> %d",
                 t50 * 1e3, b->target * 1e3, k, r * 1e3, o * 1e3, cur, next);
    return next;
}

int koe_opt_threads(const koe_opt_task *t, size_t n, int cur, int cores, char *reason,
                    size_t reason_cap) {
    if (reason && reason_cap) reason[0] = 0;
    if (cores < 2) return cur;
    /* the most frequent thread count above one */
    size_t from = n > 64 ? n - 64 : 0; /* the last 64 */
    int count[65] = {0}, k = 0;
    for (size_t i = from; i < n; i++)
        if (t[i].threads >= 2 && t[i].threads <= 64 && t[i].audio > 0 && t[i].synth > 0)
            count[t[i].threads]++;
    for (int c = 2; c <= 64; c++)
        if (count[c] > (k ? count[k] : 0)) k = c;
    if (!k || count[k] < KOE_OPT_TASKS_MIN) {
        /* one core each leaves no figures on more cores: once the last of them have aged out of
         * the window, back to the default policy, which gives a lone stream every core, so that
         * the efficiency is measured again (a bounded, logged exploration) */
        if (cur != 1) return cur;
        if (reason && reason_cap)
            snprintf(reason, reason_cap,
                     "fewer than %d recent later segments ran on more than one core: "
                     "later-threads 1 -> 0 (default policy) to measure the efficiency again",
                     KOE_OPT_TASKS_MIN);
        return 0;
    }
    double r1[64], rk[64];
    size_t n1 = 0, nk = 0;
    for (size_t i = from; i < n; i++) {
        if (!(t[i].audio > 0) || !(t[i].synth > 0)) continue;
        double rho = t[i].synth / t[i].audio;
        if (t[i].threads == 1) r1[n1++] = rho;
        if (t[i].threads == k) rk[nk++] = rho;
    }
    if (n1 < KOE_OPT_TASKS_MIN || nk < KOE_OPT_TASKS_MIN) return cur;
    double rho1 = koe_median(r1, n1), rhok = koe_median(rk, nk);
    double e = rho1 / (k * rhok);
    int next = e >= 0.85 ? 0 : e < 0.70 ? 1 : cur;
    if (next == cur) return cur;
    if (reason && reason_cap)
        snprintf(reason, reason_cap,
                 "later segments synthesize in %.3f of their audio's length on 1 core (%zu) and "
                 "%.3f on %d (%zu): parallel efficiency %.2f, so later-threads %d -> %d (0 = "
                 "every free core for a lone stream, 1 = one core each)",
                 rho1, n1, rhok, k, nk, e, cur, next);
    return next;
}
