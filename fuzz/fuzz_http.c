/* Fuzz target: the HTTP server end to end. One koe server (espeak-ng backend, one worker) runs
 * in the fuzzing process on a loopback port; each input is sent as the raw bytes of an HTTP
 * connection (request line, headers, JSON body, or garbage) and the answer is read to its end.
 * A crash, a sanitizer report, a hang (libFuzzer -timeout) or a 500 answer is a finding. */
#include "koe/pipeline.h"
#include "koe/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port(void) {
    static int p; /* one server for the whole fuzzing process */
    if (p) return p;
    koe_error err = {0};
    const char *dd = getenv("KOE_DATA_DIR");
    koe_pipeline_opts po = {.workers = 1, .max_queue = 8, .data_dir = dd ? dd : "data"};
    koe_pipeline *pipe = koe_pipeline_new(&po, &err);
    if (!pipe) abort();
    koe_server_opts so = {.port = 0, .timeout_s = 2, .max_body = 65536, .max_input = 2000};
    koe_server *s = koe_server_start(&so, pipe, &err);
    if (!s) abort();
    koe_server_set_ready(s, 1);
    p = koe_server_port(s);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) abort(); /* the server must be up */
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[16384], head[16] = {0};
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (got < sizeof head - 1)
            memcpy(head + got, buf,
                   (size_t)n < sizeof head - 1 - got ? (size_t)n : sizeof head - 1 - got);
        got += (size_t)n;
    }
    close(fd);
    if (!strncmp(head, "HTTP/1.1 500", 12) || !strncmp(head, "HTTP/1.0 500", 12)) abort();
    return 0;
}
