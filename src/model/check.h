/* Checking the engine against a reference case in the layout of ../shared/vectors (meta.json +
 * one raw file per tensor): every stage the engine computes is compared with the reference with
 * the tolerances of the vectors' README; the generator is also run from the reference STFT.
 * Used by tests and by `koe model-check`. */
#ifndef KOE_MODEL_CHECK_H
#define KOE_MODEL_CHECK_H

#include "koe/error.h"
#include "koe/model.h"

#define KOE_CHECK_MAX_STAGES 40

typedef struct koe_check_stage {
    char name[32];
    double max_abs, max_rel, tol; /* max_rel relative to the reference's max |value| */
    int compared;                 /* 0: the case has no such tensor, or it is information only */
    int info_only;                /* end-to-end audio: reported, never pass/fail (README) */
    int pass;
    char note[96];
} koe_check_stage;

typedef struct koe_check_report {
    koe_check_stage stage[KOE_CHECK_MAX_STAGES];
    int n;
    int tokens, frames_ref, frames_got;
    int dur_mismatches;
    int pass;
    char first_failure[32];
} koe_check_report;

/* Runs the case in case_dir through the context's model in the deterministic noise mode. */
int koe_model_check_case(koe_ctx *c, const char *case_dir, koe_check_report *rep, koe_error *err);

#endif
