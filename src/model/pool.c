#include "model/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct koe_pool {
    int n_threads; /* the pool's size */
    int active;    /* threads the runs use now (1..n_threads) */
    int helpers;   /* workers that join the current run (active - 1) */
    int joined;    /* workers that took a place in the current run */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned generation; /* bumped for each koe_pool_run */
    int stopping;
    int busy; /* workers still inside the current job */
    koe_pool_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next; /* next task index to take */
    void (*yield)(void *user);
    void *yield_user;
};

static void drain(koe_pool *p) {
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) return;
        p->fn(p->arg, t);
    }
}

static void *worker(void *vp) {
    koe_pool *p = vp;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stopping) break;
        seen = p->generation;
        if (p->joined >= p->helpers) continue; /* this run uses fewer threads */
        p->joined++;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

koe_pool *koe_pool_new(int n_threads, koe_error *err) {
    if (n_threads < 1 || n_threads > 256) {
        koe_error_set(err, KOE_ERR_INVALID, "thread count %d is out of range 1..256", n_threads);
        return NULL;
    }
    koe_pool *p = calloc(1, sizeof *p);
    if (!p) goto nomem;
    p->n_threads = p->active = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) goto nomem;
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->threads[i], NULL, worker, p)) {
                p->n_threads = i + 1; /* free() joins the ones that started */
                koe_pool_free(p);
                koe_error_set(err, KOE_ERR_NOMEM, "could not start pool thread %d", i + 1);
                return NULL;
            }
        }
    }
    return p;
nomem:
    if (p) koe_pool_free(p);
    koe_error_set(err, KOE_ERR_NOMEM, "out of memory creating a thread pool");
    return NULL;
}

void koe_pool_free(koe_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (p->threads)
        for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int koe_pool_threads(const koe_pool *p) {
    return p ? p->active : 1;
}

int koe_pool_size(const koe_pool *p) {
    return p ? p->n_threads : 1;
}

int koe_pool_set_active(koe_pool *p, int n) {
    if (!p) return 1;
    p->active = n < 1 ? 1 : n > p->n_threads ? p->n_threads : n;
    return p->active;
}

void koe_pool_set_yield(koe_pool *p, void (*fn)(void *user), void *user) {
    if (!p) return;
    p->yield = fn;
    p->yield_user = user;
}

void koe_pool_run(koe_pool *p, int n_tasks, koe_pool_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p && p->yield) p->yield(p->yield_user);
    if (!p || p->active == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->helpers = p->active - 1;
    p->joined = 0;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
