/* test_pool.c -- the memory pool: hits, misses, errors, reset and destroy. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../batchaot_native.h"
#include "check.h"

static ba_pool_stats stats_of(const ba_pool *p)
{
    ba_pool_stats st;
    ba_pool_get_stats(p, &st);
    return st;
}

static bool aligned(const void *ptr, size_t align) { return (uintptr_t)ptr % align == 0; }

static void test_blocks_and_misses(void)
{
    ba_pool *p = ba_pool_new(100, 3, 64);
    CHECK(p != NULL);
    void *a = ba_pool_alloc(p, 100), *b = ba_pool_alloc(p, 1), *c = ba_pool_alloc(p, 0);
    CHECK(a && b && c && a != b && b != c && a != c);
    CHECK(aligned(a, 64) && aligned(b, 64) && aligned(c, 64));
    memset(a, 0xab, 100);                  /* blocks do not overlap */
    memset(b, 0xcd, 100);
    CHECK(((unsigned char *)a)[99] == 0xab);
    void *d = ba_pool_alloc(p, 10);        /* exhausted: a miss, still usable */
    void *big = ba_pool_alloc(p, 1000);    /* too big for a block: a miss */
    CHECK(d && big && aligned(d, 64) && aligned(big, 64));
    memset(big, 1, 1000);
    ba_pool_stats st = stats_of(p);
    CHECK(st.allocs == 5 && st.hits == 3 && st.misses == 2 && st.in_use == 5);
    CHECK(st.high_water == 5 && st.block_bytes == 100 && st.nblocks == 3);
    CHECK(ba_pool_free(p, b) == BA_OK);
    CHECK(ba_pool_alloc(p, 50) == b);      /* the freed block comes back first */
    CHECK(ba_pool_free(p, d) == BA_OK && ba_pool_free(p, big) == BA_OK);
    st = stats_of(p);
    CHECK(st.frees == 3 && st.in_use == 3 && st.high_water == 5);
    ba_pool_destroy(&p);
    CHECK(p == NULL);
}

static void test_errors(void)
{
    ba_pool *p = ba_pool_new(64, 2, 16), *q = ba_pool_new(64, 2, 16);
    int local = 0;
    void *a = ba_pool_alloc(p, 8), *m = ba_pool_alloc(p, 4096);
    CHECK(ba_pool_free(p, a) == BA_OK);
    CHECK(ba_pool_free(p, a) == BA_ERR_DOUBLE_FREE);
    CHECK(ba_pool_free(p, &local) == BA_ERR_FOREIGN_POINTER);
    CHECK(ba_pool_free(p, (char *)a + 1) == BA_ERR_FOREIGN_POINTER);   /* inside a block */
    void *b = ba_pool_alloc(q, 8);
    CHECK(ba_pool_free(p, b) == BA_ERR_FOREIGN_POINTER);               /* another pool's */
    CHECK(ba_pool_free(p, m) == BA_OK);
    CHECK(ba_pool_free(p, m) == BA_ERR_FOREIGN_POINTER);               /* a miss, twice */
    CHECK(ba_pool_free(p, NULL) == BA_ERR_BAD_ARGUMENT);
    CHECK(ba_pool_free(NULL, b) == BA_ERR_BAD_ARGUMENT);
    CHECK(ba_pool_alloc(NULL, 8) == NULL);
    CHECK(ba_pool_alloc(p, SIZE_MAX) == NULL);                          /* cannot round up */
    ba_pool_stats st = stats_of(p);
    CHECK(st.frees == 2 && st.in_use == 0);
    CHECK(ba_pool_new(0, 4, 64) == NULL);
    CHECK(ba_pool_new(64, 4, 48) == NULL);                              /* not a power of 2 */
    CHECK(ba_pool_new(SIZE_MAX, 2, 64) == NULL);
    CHECK(ba_pool_new(SIZE_MAX / 2, 4, 64) == NULL);
    ba_pool *tiny_align = ba_pool_new(3, 2, 1);
    CHECK(tiny_align && aligned(ba_pool_alloc(tiny_align, 3), sizeof(void *)));
    ba_pool_destroy(&tiny_align);
    ba_pool_destroy(&p);
    ba_pool_destroy(&q);
}

static void test_batches(void)
{
    ba_pool *p = ba_pool_new(32, 4, 32);
    void *ptrs[6];
    CHECK(ba_pool_alloc_batch(p, 32, ptrs, 6) == BA_OK);
    ba_pool_stats st = stats_of(p);
    CHECK(st.hits == 4 && st.misses == 2 && st.in_use == 6);
    CHECK(ba_pool_free_batch(p, ptrs, 6) == BA_OK);
    CHECK(stats_of(p).in_use == 0);
    /* all or nothing: a failing request leaves no allocation and no counts behind */
    void *half[3];
    CHECK(ba_pool_alloc_batch(p, 8, half, 2) == BA_OK);
    st = stats_of(p);
    void *fail[3];
    CHECK(ba_pool_alloc_batch(p, SIZE_MAX, fail, 3) == BA_ERR_NO_MEMORY);
    ba_pool_stats after = stats_of(p);
    CHECK(memcmp(&st, &after, sizeof st) == 0);
    /* free_batch frees what it can and reports the first error */
    half[2] = half[0];
    CHECK(ba_pool_free_batch(p, half, 3) == BA_ERR_DOUBLE_FREE);
    CHECK(stats_of(p).in_use == 0);
    CHECK(ba_pool_alloc_batch(p, 8, NULL, 1) == BA_ERR_BAD_ARGUMENT);
    CHECK(ba_pool_alloc_batch(p, 8, NULL, 0) == BA_OK);
    CHECK(ba_pool_free_batch(NULL, half, 1) == BA_ERR_BAD_ARGUMENT);
    ba_pool_destroy(&p);
}

static void test_reset_and_destroy(void)
{
    ba_pool *p = ba_pool_new(16, 2, 64);
    void *first = ba_pool_alloc(p, 16);
    ba_pool_alloc(p, 16);
    ba_pool_alloc(p, 16);                  /* a miss, released by reset */
    ba_pool_reset(p);
    ba_pool_reset(p);
    ba_pool_stats st = stats_of(p);
    CHECK(st.in_use == 0 && st.allocs == 3 && st.high_water == 3);
    CHECK(ba_pool_alloc(p, 1) == first);   /* same order as a new pool */
    CHECK(ba_pool_free(p, first) == BA_OK);
    CHECK(ba_pool_free(p, first) == BA_ERR_DOUBLE_FREE);
    ba_pool_destroy(&p);
    ba_pool_destroy(&p);
    ba_pool_destroy(NULL);
    ba_pool_reset(NULL);
    CHECK(p == NULL);
    st = stats_of(NULL);
    CHECK(st.allocs == 0 && st.nblocks == 0);
    ba_pool_get_stats(NULL, NULL);
    /* no blocks at all: every request is a miss */
    ba_pool *none = ba_pool_new(8, 0, 64);
    void *m = ba_pool_alloc(none, 8);
    CHECK(m && stats_of(none).misses == 1 && ba_pool_free(none, m) == BA_OK);
    ba_pool_destroy(&none);
}

static void test_many_pools(void)
{
    enum { NPOOLS = 8, NTAKE = 40 };
    ba_pool *pools[NPOOLS];
    void *taken[NPOOLS][NTAKE];
    for (int i = 0; i < NPOOLS; i++)
        pools[i] = ba_pool_new(64 * (size_t)(i + 1), 16, 64);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NPOOLS; i++)
            for (int j = 0; j < NTAKE; j++) {
                taken[i][j] = ba_pool_alloc(pools[i], (size_t)(j % 5) * 40);
                memset(taken[i][j], i, (size_t)(j % 5) * 40);
            }
        for (int i = 0; i < NPOOLS; i++)
            for (int j = NTAKE - 1; j >= 0; j -= 2)
                CHECK(ba_pool_free(pools[(i + 1) % NPOOLS], taken[i][j]) == BA_ERR_FOREIGN_POINTER
                      && ba_pool_free(pools[i], taken[i][j]) == BA_OK);
        for (int i = 0; i < NPOOLS; i++)
            ba_pool_reset(pools[i]);
    }
    for (int i = 0; i < NPOOLS; i++) {
        CHECK(stats_of(pools[i]).allocs == 3 * NTAKE);
        ba_pool_destroy(&pools[i]);
    }
}

int main(void)
{
    test_blocks_and_misses();
    test_errors();
    test_batches();
    test_reset_and_destroy();
    test_many_pools();
    return check_report("test_pool");
}
