/* koe serve: the HTTP server (libmicrohttpd) with the OpenAI-compatible speech API, the legacy
 * request shape, health/status/metrics and the embedded web page. */
#ifndef KOE_SERVER_H
#define KOE_SERVER_H

#include <stddef.h>

#include "koe/error.h"
#include "koe/pipeline.h"

typedef struct koe_server_opts {
    const char *host; /* default 127.0.0.1 */
    int port;         /* default 8880; 0 = any free port (see koe_server_port) */
    size_t max_body;  /* bytes; default 2 MiB */
    size_t max_input; /* characters of `input`; default 100,000 (4,500 for the legacy `text`) */
    int timeout_s;    /* idle connection timeout; default 30 */
    int max_connections, max_per_ip;
    const char *api_key;   /* NULL = none */
    double ttfa_target_ms; /* default 150 */
    int normalize;         /* loudness normalization of the output */
    /* The finished-audio cache: whole answers of repeated identical requests, replayed (the
     * earlier take of Kokoro's random noise included). Bytes; 0 = off. */
    size_t audio_cache_bytes;
} koe_server_opts;

typedef struct koe_server koe_server;

/* Starts listening at once; the pipeline (owned by the caller, outliving the server) does the
 * work. */
koe_server *koe_server_start(const koe_server_opts *opts, koe_pipeline *pipeline, koe_error *err);
int koe_server_port(const koe_server *s);
/* /health answers 503 until ready (warm-up done). */
void koe_server_set_ready(koe_server *s, int ready);
/* Stops accepting, waits up to drain_s for streams in flight, stops. */
void koe_server_stop(koe_server *s, double drain_s);
int koe_server_active(koe_server *s);

#endif
