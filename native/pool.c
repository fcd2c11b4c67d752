/*
 * pool.c -- a per-owner memory pool of fixed-size aligned blocks.
 *
 * The blocks are carved from one aligned slab and handed out from a stack of
 * free block indices, so taking and giving back a block is O(1) and a freed
 * block is the next one handed out (it is still warm in cache). Requests that
 * do not fit a block, or that come while every block is taken, get a fresh
 * aligned allocation (a "miss") that is tracked so that reset/destroy release
 * it. No globals and no locks: a pool belongs to one thread of one process.
 */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign under -std=c99 */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batchaot_native.h"

struct ba_pool {
    unsigned char *slab;     /* nblocks blocks of `stride` bytes each */
    size_t block_bytes, nblocks, align, stride;
    size_t *free_stack;      /* indices of free blocks; the top is free_stack[nfree - 1] */
    size_t nfree;
    uint8_t *taken;          /* per block: handed out? (detects double frees) */
    void **misses;           /* live miss allocations */
    size_t nmisses, misses_cap;
    ba_pool_stats st;
};

static bool is_power_of_two(size_t x) { return x && !(x & (x - 1)); }

/* x rounded up to a multiple of align (a power of two); 0 on overflow. */
static size_t round_up(size_t x, size_t align)
{
    return x > SIZE_MAX - (align - 1) ? 0 : (x + align - 1) & ~(align - 1);
}

static void *aligned_alloc_bytes(size_t align, size_t nbytes)
{
    void *ptr = NULL;
    return posix_memalign(&ptr, align, nbytes) == 0 ? ptr : NULL;
}

/* Every block free, block 0 on top, as after ba_pool_new. */
static void refill_free_stack(ba_pool *p)
{
    for (size_t i = 0; i < p->nblocks; i++)
        p->free_stack[i] = p->nblocks - 1 - i;
    p->nfree = p->nblocks;
    if (p->nblocks)
        memset(p->taken, 0, p->nblocks);
}

static void release_misses(ba_pool *p)
{
    for (size_t i = 0; i < p->nmisses; i++)
        free(p->misses[i]);
    p->nmisses = 0;
}

static void free_pool(ba_pool *p)
{
    release_misses(p);
    free(p->misses);
    free(p->slab);
    free(p->free_stack);
    free(p->taken);
    free(p);
}

ba_pool *ba_pool_new(size_t block_bytes, size_t nblocks, size_t align)
{
    if (align == 0)
        align = 64;
    if (!is_power_of_two(align) || block_bytes == 0)
        return NULL;
    if (align < sizeof(void *))   /* posix_memalign's minimum */
        align = sizeof(void *);
    size_t stride = round_up(block_bytes, align);
    if (stride == 0 || (nblocks && stride > SIZE_MAX / nblocks))
        return NULL;
    ba_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->block_bytes = block_bytes;
    p->nblocks = nblocks;
    p->align = align;
    p->stride = stride;
    p->slab = nblocks ? aligned_alloc_bytes(align, nblocks * stride) : NULL;
    /* +1: never a zero-byte request, so NULL always means failure */
    p->free_stack = malloc((nblocks + 1) * sizeof *p->free_stack);
    p->taken = calloc(nblocks + 1, 1);
    if ((nblocks && !p->slab) || !p->free_stack || !p->taken) {
        free_pool(p);
        return NULL;
    }
    refill_free_stack(p);
    p->st.block_bytes = block_bytes;
    p->st.nblocks = nblocks;
    return p;
}

static void *take_block(ba_pool *p)
{
    size_t i = p->free_stack[--p->nfree];
    p->taken[i] = 1;
    p->st.hits++;
    return p->slab + i * p->stride;
}

static void *take_miss(ba_pool *p, size_t nbytes)
{
    if (p->nmisses == p->misses_cap) {
        size_t cap = p->misses_cap ? 2 * p->misses_cap : 8;
        void **grown = realloc(p->misses, cap * sizeof *grown);
        if (!grown)
            return NULL;
        p->misses = grown;
        p->misses_cap = cap;
    }
    size_t size = round_up(nbytes ? nbytes : 1, p->align);
    void *ptr = size ? aligned_alloc_bytes(p->align, size) : NULL;
    if (!ptr)
        return NULL;
    p->misses[p->nmisses++] = ptr;
    p->st.misses++;
    return ptr;
}

void *ba_pool_alloc(ba_pool *p, size_t nbytes)
{
    if (!p)
        return NULL;
    void *ptr = nbytes <= p->block_bytes && p->nfree ? take_block(p) : take_miss(p, nbytes);
    if (ptr) {
        p->st.allocs++;
        if (++p->st.in_use > p->st.high_water)
            p->st.high_water = p->st.in_use;
    }
    return ptr;
}

/* Is ptr the start of one of our blocks? Compared as integers: relational
 * operators on pointers into different objects are undefined in C. */
static bool block_index(const ba_pool *p, const void *ptr, size_t *index)
{
    uintptr_t at = (uintptr_t)ptr, base = (uintptr_t)p->slab;
    if (!p->slab || at < base || at - base >= p->nblocks * p->stride
        || (at - base) % p->stride)
        return false;
    *index = (at - base) / p->stride;
    return true;
}

static bool release_miss(ba_pool *p, void *ptr)
{
    for (size_t i = 0; i < p->nmisses; i++) {
        if (p->misses[i] == ptr) {
            free(ptr);
            p->misses[i] = p->misses[--p->nmisses];
            return true;
        }
    }
    return false;
}

int ba_pool_free(ba_pool *p, void *ptr)
{
    if (!p || !ptr)
        return BA_ERR_BAD_ARGUMENT;
    size_t i;
    if (block_index(p, ptr, &i)) {
        if (!p->taken[i])
            return BA_ERR_DOUBLE_FREE;
        p->taken[i] = 0;
        p->free_stack[p->nfree++] = i;
    } else if (!release_miss(p, ptr)) {
        return BA_ERR_FOREIGN_POINTER;
    }
    p->st.frees++;
    p->st.in_use--;
    return BA_OK;
}

int ba_pool_alloc_batch(ba_pool *p, size_t nbytes, void **out, size_t n)
{
    if (!p || (!out && n))
        return BA_ERR_BAD_ARGUMENT;
    ba_pool_stats before = p->st;
    for (size_t i = 0; i < n; i++) {
        out[i] = ba_pool_alloc(p, nbytes);
        if (out[i])
            continue;
        while (i > 0) {            /* undo in reverse: the free stack is as before */
            ba_pool_free(p, out[--i]);
            out[i] = NULL;
        }
        p->st = before;
        return BA_ERR_NO_MEMORY;
    }
    return BA_OK;
}

int ba_pool_free_batch(ba_pool *p, void **ptrs, size_t n)
{
    if (!p || (!ptrs && n))
        return BA_ERR_BAD_ARGUMENT;
    int first = BA_OK;
    for (size_t i = 0; i < n; i++) {
        int rc = ba_pool_free(p, ptrs[i]);
        if (first == BA_OK)
            first = rc;
    }
    return first;
}

void ba_pool_reset(ba_pool *p)
{
    if (!p)
        return;
    refill_free_stack(p);
    release_misses(p);
    p->st.in_use = 0;
}

void ba_pool_destroy(ba_pool **pp)
{
    if (!pp || !*pp)
        return;
    free_pool(*pp);
    *pp = NULL;
}

void ba_pool_get_stats(const ba_pool *p, ba_pool_stats *out)
{
    if (!out)
        return;
    if (p)
        *out = p->st;
    else
        memset(out, 0, sizeof *out);
}
