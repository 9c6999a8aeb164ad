/* The Kokoro backend. The engine's public API (include/koe/model.h) is not complete yet, so this
 * build cannot run Kokoro: asking for it is an error that says so, and `koe serve` falls back to
 * espeak-ng when the weights were only discovered, not requested. */
#include "pipeline/backend.h"

koe_backend *koe_backend_kokoro_new(const char *model_path, const char *config_path,
                                    koe_error *err) {
    (void)config_path;
    koe_error_set(err, KOE_ERR_UNSUPPORTED,
                  "this build of koe cannot run the Kokoro engine yet (weights at %s)", model_path);
    return NULL;
}
