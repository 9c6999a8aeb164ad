#include "harness.h"
#include "model/pool.h"

#include <stdatomic.h>

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
            KT_CHECK(bad == 0 && atomic_load(&j.total) == n, "threads %d round %d: %d tasks, %d wrong",
                     threads, round, n, bad);
        }
        koe_pool_free(p);
    }
}

static void test_bad_count(void) {
    koe_error e;
    KT_EXPECT(koe_pool_new(0, &e) == NULL && e.code == KOE_ERR_INVALID);
}

int main(void) {
    kt_run("every_task_once", test_every_task_once);
    kt_run("bad_count", test_bad_count);
    return kt_finish();
}
