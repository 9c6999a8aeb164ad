#include "harness.h"
#include "model/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

typedef struct {
    atomic_int hits[1000];
    atomic_int total;
} job;

static void count(void *arg, int task) {
    job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
    atomic_fetch_add(&j->total, 1);
}

static void test_every_task_once(void) {
    for (int threads = 1; threads <= 4; threads++) {
        koe_pool *p = koe_pool_new(threads, NULL);
        KT_CHECK(p != NULL, "pool of %d", threads);
        if (!p) continue;
        KT_EXPECT(koe_pool_threads(p) == threads);
        for (int round = 0; round < 200; round++) {
            static job j;
            int n = 1 + (round * 37) % 1000;
            for (int i = 0; i < 1000; i++) atomic_store(&j.hits[i], 0);
            atomic_store(&j.total, 0);
            koe_pool_run(p, n, count, &j);
            int bad = 0;
            for (int i = 0; i < n; i++) bad += atomic_load(&j.hits[i]) != 1;
            KT_CHECK(bad == 0 && atomic_load(&j.total) == n,
                     "threads %d round %d: %d tasks, %d wrong", threads, round, n, bad);
        }
        koe_pool_free(p);
    }
}

/* Which threads ran tasks: each task sleeps a little so that every participant takes some. */
typedef struct {
    pthread_mutex_t mu;
    pthread_t seen[8];
    int nseen;
    atomic_int total;
} who;

static void note(void *arg, int task) {
    (void)task;
    who *w = arg;
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w->mu);
    int known = 0;
    for (int i = 0; i < w->nseen; i++) known |= pthread_equal(w->seen[i], pthread_self());
    if (!known && w->nseen < 8) w->seen[w->nseen++] = pthread_self();
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_add(&w->total, 1);
}

/* A pool of 4 set to use 1, 2, 3, 4, then 2 threads: every task runs once, on at most that many
 * threads, and (with tasks that take a while) on more than one when allowed. */
static void test_active_threads(void) {
    koe_pool *p = koe_pool_new(4, NULL);
    KT_CHECK(p != NULL, "pool of 4");
    if (!p) return;
    KT_EXPECT(koe_pool_size(p) == 4);
    KT_EXPECT(koe_pool_set_active(p, 0) == 1 && koe_pool_set_active(p, 9) == 4);
    const int plan[] = {1, 2, 3, 4, 2, 1, 4};
    for (size_t k = 0; k < sizeof plan / sizeof plan[0]; k++) {
        KT_EXPECT(koe_pool_set_active(p, plan[k]) == plan[k] && koe_pool_threads(p) == plan[k]);
        int most = 0;
        for (int round = 0; round < 20; round++) {
            who w = {.nseen = 0};
            pthread_mutex_init(&w.mu, NULL);
            atomic_store(&w.total, 0);
            koe_pool_run(p, 64, note, &w);
            KT_CHECK(atomic_load(&w.total) == 64 && w.nseen <= plan[k],
                     "active %d: %d tasks on %d threads", plan[k], atomic_load(&w.total), w.nseen);
            if (w.nseen > most) most = w.nseen;
            pthread_mutex_destroy(&w.mu);
        }
        KT_CHECK(plan[k] == 1 || most > 1, "active %d: never more than one thread", plan[k]);
    }
    koe_pool_free(p);
}

static void test_bad_count(void) {
    koe_error e;
    KT_EXPECT(koe_pool_new(0, &e) == NULL && e.code == KOE_ERR_INVALID);
}

/* The yield hook: called once at the start of every run by the running thread, before any task,
 * and a run waits inside it for as long as it blocks. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, reached, calls;
} gate;

static void gate_yield(void *user) {
    gate *g = user;
    pthread_mutex_lock(&g->mu);
    g->calls++;
    g->reached = 1;
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

typedef struct runner {
    koe_pool *p;
    job *j;
} runner;

static void *run_200(void *arg) {
    runner *r = arg;
    koe_pool_run(r->p, 200, count, r->j);
    return NULL;
}

static void test_yield(void) {
    koe_pool *p = koe_pool_new(2, NULL);
    KT_CHECK(p != NULL, "pool");
    if (!p) return;
    static job j;
    static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    koe_pool_set_yield(p, gate_yield, &g);
    runner r = {p, &j};
    pthread_t th;
    KT_CHECK(pthread_create(&th, NULL, run_200, &r) == 0, "runner thread");
    int reached = 0;
    for (int i = 0; i < 60000 && !reached; i++) { /* a state, not a duration */
        pthread_mutex_lock(&g.mu);
        reached = g.reached;
        pthread_mutex_unlock(&g.mu);
        if (!reached) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    KT_CHECK(reached, "the run reached its yield");
    KT_CHECK(atomic_load(&j.total) == 0, "no task ran while it yields: %d", atomic_load(&j.total));
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    KT_CHECK(atomic_load(&j.total) == 200, "then every task: %d", atomic_load(&j.total));
    koe_pool_run(p, 10, count, &j);
    KT_CHECK(g.calls == 2 && atomic_load(&j.total) == 210, "one call per run: %d", g.calls);
    koe_pool_set_yield(p, NULL, NULL);
    koe_pool_run(p, 10, count, &j);
    KT_CHECK(g.calls == 2, "unset: not called");
    koe_pool_free(p);
}

int main(void) {
    kt_run("yield", test_yield);
    kt_run("every_task_once", test_every_task_once);
    kt_run("active_threads", test_active_threads);
    kt_run("bad_count", test_bad_count);
    return kt_finish();
}
