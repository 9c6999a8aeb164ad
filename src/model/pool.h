/* A small fork-join thread pool owned by one inference context: the caller decides how many
 * threads a context uses, and contexts never share workers. */
#ifndef KOE_MODEL_POOL_H
#define KOE_MODEL_POOL_H

#include "koe/error.h"

typedef struct koe_pool koe_pool;

/* n_threads counts the calling thread: 1 means no extra threads (everything runs inline). */
koe_pool *koe_pool_new(int n_threads, koe_error *err);
void koe_pool_free(koe_pool *pool);
/* The threads the runs use now (what the kernels split their work for). */
int koe_pool_threads(const koe_pool *pool);
/* The pool's size (the most it can use). */
int koe_pool_size(const koe_pool *pool);
/* Uses n threads (clamped to 1..size) from the next run on; returns the count set. Only between
 * runs, by the thread that runs them: work is split for koe_pool_threads(), so scratch sized
 * before the change must be sized again. */
int koe_pool_set_active(koe_pool *pool, int n);

/* fn(user), when set, is called by the thread that runs the pool at the start of every run
 * (between two kernels) and may block there: how a scheduler pauses this context's work while
 * more urgent work has the cores. NULL = none. Set between runs only. */
void koe_pool_set_yield(koe_pool *pool, void (*fn)(void *user), void *user);

/* Runs fn(arg, task) for task = 0 .. n_tasks-1 spread over the pool's threads (the caller takes
 * part) and returns when all are done. Not re-entrant: fn must not call koe_pool_run. */
typedef void (*koe_pool_fn)(void *arg, int task);
void koe_pool_run(koe_pool *pool, int n_tasks, koe_pool_fn fn, void *arg);

#endif
