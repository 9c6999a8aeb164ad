#ifndef KOE_WEB_ASSETS_H
#define KOE_WEB_ASSETS_H
/* The web page served by `koe serve` at `/`: the files of web/, embedded into the binary at build
 * time by cmake/embed_web.cmake. Lookups are pure table searches: a request path never reaches the
 * file system, so no path can escape the page's files. */
#include <stddef.h>

typedef struct koe_web_asset {
    const char *path;          /* "/index.html", "/app.js", ... */
    const char *mime;          /* Content-Type to send, with charset for text */
    const unsigned char *data; /* static, never freed */
    size_t len;                /* bytes in data */
} koe_web_asset;

/* The asset for a request path ("/" means "/index.html"; a "?query" or "#fragment" is ignored).
 * NULL when there is no such file, or when path is NULL or does not start with '/'. */
const koe_web_asset *koe_web_asset_find(const char *path);

/* The index-th embedded asset in path order, NULL past the end (for listings and tests). */
const koe_web_asset *koe_web_asset_at(size_t index);

#endif
