/* Fuzz target: the HTTP server end to end. One koe server (espeak-ng backend, one worker) runs
 * in the fuzzing process on a loopback port; each input is sent as the raw bytes of an HTTP
 * connection (request line, headers, JSON body, or garbage) and the answer is read to its end.
 * A crash, a sanitizer report, a hang (libFuzzer -timeout) or a 500 answer is a finding.
 *
 * The client closes first (shutdown after the request, so a half-sent request ends at once), so
 * every input leaves a TIME_WAIT on a client port for 60 s. At several hundred inputs a second
 * that is more than the 28,232 ephemeral ports: connect() then fails with EADDRNOTAVAIL unless the
 * kernel reuses loopback TIME_WAIT ports (net.ipv4.tcp_tw_reuse, 2 by default but not everywhere),
 * and libFuzzer's SIGALRM (no SA_RESTART) can interrupt a connect or recv with EINTR. Neither is
 * the server's fault. So each connection comes from the next of the loopback addresses
 * 127.0.0.2..127.0.0.254 (each has its own ports: 253 times as many before any TIME_WAIT is
 * needed again), and a failed connect is retried on a new socket with backoff; only a server
 * unreachable for 5 s is a finding, reported with its errno. */
#include "koe/pipeline.h"
#include "koe/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
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

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Retried connects by errno, printed at exit (libFuzzer ends with exit()). */
static long retries, retried_errno[4]; /* EADDRNOTAVAIL, EINTR, ECONNREFUSED, other */

static void print_retries(void) {
    if (retries)
        fprintf(stderr,
                "fuzz_http: %ld connect retries (EADDRNOTAVAIL %ld, EINTR %ld, ECONNREFUSED %ld, "
                "other %ld)\n",
                retries, retried_errno[0], retried_errno[1], retried_errno[2], retried_errno[3]);
}

/* A connected socket to the in-process server, or abort if it stays unreachable for 5 s. */
static int connect_server(void) {
    static int registered;
    if (!registered) registered = !atexit(print_retries);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double start = now_s();
    long wait_us = 1000;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int e;
        if (fd >= 0) {
            /* A connect stuck on a full accept queue (dropped SYNs) returns after 1 s. */
            struct timeval snd = {.tv_sec = 1}, rcv = {.tv_sec = 5};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
            /* The port is chosen at connect(), unique for the 4-tuple, not at bind(). */
            int one = 1;
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            static unsigned next_src;
            struct sockaddr_in src = {.sin_family = AF_INET};
            src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + next_src++ % 253);
            if (!bind(fd, (struct sockaddr *)&src, sizeof src) &&
                !connect(fd, (struct sockaddr *)&a, sizeof a))
                return fd;
            e = errno;
            close(fd);
        } else {
            e = errno;
        }
        retries++;
        retried_errno[e == EADDRNOTAVAIL ? 0 : e == EINTR ? 1 : e == ECONNREFUSED ? 2 : 3]++;
        if (now_s() - start > 5.0) {
            fprintf(stderr, "fuzz_http: the server at 127.0.0.1:%d unreachable for 5 s: %s\n",
                    port(), strerror(e));
            print_retries();
            abort();
        }
        usleep((useconds_t)wait_us);
        if (wait_us < 100000) wait_us *= 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    int fd = connect_server();
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[16384], head[16] = {0};
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue; /* libFuzzer's SIGALRM */
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
