/* stack.c - task stacks: a guarded mapping per task, with its ox__stack
 * header at its top (task_internal.h), recycled through a small cache; and
 * the overflow report. A task holds one only from its first run until it
 * returns.
 *
 * Freed stacks of the default size are cached, so that spawning maps
 * nothing: up to STACK_CACHE of them, all the guarded stacks there can be,
 * so that a burst of thousands of live tasks (a spawn tree) costs no
 * munmap, mmap and mprotect per task when it ends and the next begins
 * (in skynet that was a quarter of the time). A cached stack keeps the
 * pages its last task touched (warm) until a worker is about to sleep or
 * stops: then all but STACK_WARM give their pages back (MADV_FREE) and stay
 * mapped (cold). Giving back at each free instead costs a TLB shootdown
 * per task in the middle of the burst. Go frees its stacks' memory at a
 * collection, for the same reason.
 *
 * A guarded stack costs two kernel mappings (the guard splits the region),
 * and vm.max_map_count is 65 530 by default: a million guarded stacks
 * cannot exist. So only the first GUARDED_MAX live stacks are guarded
 * (cached ones make way: evict_cached); past that, default-size stacks are
 * carved from slabs of SLAB_STACKS, one mapping each, without guard
 * pages. Such a stack's overflow is caught when the task next switches
 * (its stack pointer is found within SLAB_REDZONE of the bottom, or
 * below), not at the faulting access: a deep call that returns before it
 * switches can overwrite the stack below it unseen. Pages are committed
 * only when touched, so an idle task costs its record and the page or two
 * its frames use, slab or not. */
#include "sanitizer.h"
#include "task_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GUARDED_MAX       16384 /* 32 768 mappings: half the default vm.max_map_count */
#define STACK_CACHE       GUARDED_MAX
#define STACK_WARM        1024                /* cached stacks that keep their pages while idle */
#define WORKER_STACKS     128                 /* cached by each worker for its own tasks */
#define STASH_BATCH       (WORKER_STACKS / 2) /* moved at once to or from the shared cache */
#define OVER_BUDGET_STASH 16  /* a worker's stash, once the guarded budget is used up */
#define GUARDED_BATCH     16  /* default-size guarded stacks mapped with one mmap */
#define GUARDED_SINGLES   256 /* the budget's last stacks, mapped one at a time */
#define SLAB_STACKS       64
#define SLAB_REDZONE      ((size_t)8 * 1024) /* an sp this near the bottom is an overflow */
#define HEADER_SIZE       ox__cache_lines(sizeof(ox__stack))

/* Cached stacks, all of default size, in chains (free_list.h): warm
 * ones keep their pages, cold ones gave them back. */
static struct {
    ox__spin lock;
    ox__chains warm, cold;
    _Atomic size_t draws; /* chains asked for (locked_count.h) */
} cache;

static size_t cache_count(void)
{
    return ox__chains_count(&cache.warm) + ox__chains_count(&cache.cold);
}

/* Whether the cache looks empty (a hint: its lock is then not worth
 * taking; a stack put there meanwhile is found next time). */
static bool cache_looks_empty(void)
{
    return cache_count() == 0;
}

/* Caches chain warm if the cache has room for all of it; the caller holds
 * cache.lock. */
static bool cache_push_if_room(ox__chain_link *chain)
{
    bool room = cache_count() + chain->chain_count <= STACK_CACHE;
    if (room)
        ox__chains_push(&cache.warm, chain);
    return room;
}

static struct {
    ox__spin lock;
    ox__chains free; /* slab stacks */
} slabs;

/* Guarded mappings that exist (running or cached). */
static _Atomic size_t guarded;

/* GUARDED_MAX, or OX_TASK_GUARDED_STACKS from the environment (read once;
 * for a machine with a larger vm.max_map_count, or a test). */
static size_t guarded_max(void)
{
    static _Atomic size_t max; /* 0: not read yet */
    /* Relaxed: every thread computes the same value from the environment. */
    size_t m = atomic_load_explicit(&max, memory_order_relaxed);
    if (m == 0) {
        const char *env = getenv("OX_TASK_GUARDED_STACKS");
        char *end = NULL;
        unsigned long long v = env != NULL ? strtoull(env, &end, 10) : 0;
        m = env != NULL && end != env && *end == '\0' ? (size_t)v + 1 : GUARDED_MAX + 1;
        atomic_store_explicit(&max, m, memory_order_relaxed);
    }
    return m - 1;
}

/* Relaxed: a budget, not a synchronisation; overshooting it by a few
 * racing spawns is harmless. */
static bool guarded_budget_used(void)
{
    return atomic_load_explicit(&guarded, memory_order_relaxed) >= guarded_max();
}

/* ---- slabs ----
 * A worker's own stash of slab stacks works as its stash of guarded ones
 * (below): a full one gives STASH_BATCH back to the slabs' list as a chain,
 * an empty one takes a chain. */

/* Gives n of the stash's slab stacks back to the slabs. */
static void slab_stash_give(ox__stash *stash, unsigned n)
{
    ox__chain_link *chain = ox__stash_cut(stash, n);
    if (chain == NULL)
        return;
    ox__spin_lock(&slabs.lock);
    ox__chains_push(&slabs.free, chain);
    ox__spin_unlock(&slabs.lock);
}

static void slab_put(ox__worker *w, ox__stack *s)
{
    if (w->slab_stacks.count == WORKER_STACKS)
        slab_stash_give(&w->slab_stacks, STASH_BATCH);
    ox__stash_push(&w->slab_stacks, s);
}

/* Maps a slab: keeps its first stack, puts the others on the free list. */
static ox__stack *slab_map(void)
{
    size_t slot = (OX_TASK_DEFAULT_STACK + HEADER_SIZE + 4095) & ~(size_t)4095;
    void *base;
    size_t total;
    /* One mapping; its first page is a guard only for the first slot. */
    if (ox__sys_stack_map(slot * SLAB_STACKS, &base, &total) != 0)
        return NULL;
    char *first = (char *)base + total - slot * SLAB_STACKS;
    ox__stash others = {0};
    for (size_t i = SLAB_STACKS; i-- > 0;) {
        ox__stack *s = (ox__stack *)(void *)(first + (i + 1) * slot - HEADER_SIZE);
        s->base = first + i * slot;
        s->total = slot;
        s->guard_size = 0; /* no guard page */
        ox__stash_push(&others, s);
    }
    ox__stack *kept = ox__stash_pop(&others);
    slab_stash_give(&others, SLAB_STACKS);
    return kept;
}

/* A default-size stack from a slab, or NULL if no slab can be mapped. */
static ox__stack *slab_get(ox__worker *w)
{
    if (w->slab_stacks.count == 0) { /* a chain from the slabs, under one lock */
        ox__spin_lock(&slabs.lock);
        ox__chain_link *chain = ox__chains_pop(&slabs.free);
        ox__spin_unlock(&slabs.lock);
        ox__stash_fill(&w->slab_stacks, chain);
    }
    ox__stack *s = ox__stash_pop(&w->slab_stacks);
    return s != NULL ? s : slab_map();
}

uintptr_t ox__stack_floor(const ox__stack *s)
{
    return s->guard_size == 0 ? (uintptr_t)s->base + SLAB_REDZONE : 0;
}

/* ---- guarded stacks ---- */

/* Unmaps a guarded stack. Relaxed: guarded is a budget (guarded_budget_used). */
static void unmap_guarded(ox__stack *s)
{
    ox__sys_stack_unmap(s->base, s->total);
    atomic_fetch_sub_explicit(&guarded, 1, memory_order_relaxed);
}

/* Unmaps a cached stack, cold first; false if none is cached. The
 * guarded budget is for live stacks: a cached one makes way for a task
 * that cannot take it (another size), which would otherwise get a slab
 * stack without a guard once a burst has filled the cache. */
static bool evict_cached(void)
{
    if (cache_looks_empty())
        return false;
    ox__spin_lock(&cache.lock);
    ox__stack *s = ox__chains_pop_one(&cache.cold);
    if (s == NULL)
        s = ox__chains_pop_one(&cache.warm);
    ox__spin_unlock(&cache.lock);
    if (s == NULL)
        return false;
    unmap_guarded(s);
    return true;
}

/* The header of the guarded stack mapped at base, total bytes. */
static ox__stack *guarded_at(void *base, size_t total)
{
    ox__stack *s = (ox__stack *)(void *)((char *)base + total - HEADER_SIZE);
    s->base = base;
    s->total = total;
    s->guard_size = ox__sys_page_size();
    return s;
}

static ox__stack *map_guarded(size_t size)
{
    /* No address space has half of SIZE_MAX, and near SIZE_MAX the header
     * and the rounding to pages would wrap to a stack of a page or none. */
    if (size > SIZE_MAX / 2)
        return NULL;
    void *base;
    size_t total;
    if (ox__sys_stack_map(size + HEADER_SIZE, &base, &total) != 0)
        return NULL;
    atomic_fetch_add_explicit(&guarded, 1, memory_order_relaxed);
    return guarded_at(base, total);
}

/* Default-size guarded stacks, GUARDED_BATCH in one mmap (the guard pages
 * still take an mprotect each): keeps one, stashes the others on w (whose
 * stash is empty: cached_get found none). A burst of thousands of new
 * tasks otherwise made an mmap each: in a fresh skynet process, 16 000 of
 * them. The budget's last GUARDED_SINGLES are mapped a stack at a time:
 * fresh stacks waiting in one worker's stash are unseen by the others (of
 * any runtime: the budget is the process's), whose new tasks would get
 * slab stacks while part of a small budget sat unused
 * (task_overflow_of_an_unguarded_stack_is_reported with a budget of 16,
 * break17_the_guarded_budget_is_shared_by_every_runtime_s_workers with two
 * runtimes). Workers racing at that edge overshoot the budget by less than
 * a batch each. */
static ox__stack *map_guarded_batch(ox__worker *w)
{
    /* Relaxed: a budget (guarded_budget_used). */
    size_t used = atomic_load_explicit(&guarded, memory_order_relaxed), max = guarded_max();
    size_t n = max > used && max - used >= GUARDED_SINGLES + GUARDED_BATCH ? GUARDED_BATCH : 1;
    void *bases[GUARDED_BATCH];
    size_t total, made;
    (void)ox__sys_stack_map_many(OX_TASK_DEFAULT_STACK + HEADER_SIZE, n, bases, &total, &made);
    if (made == 0) /* one may fit where n do not (a ulimit -v, strict overcommit) */
        return n > 1 ? map_guarded(OX_TASK_DEFAULT_STACK) : NULL;
    /* Relaxed: only a budget, as in map_guarded (guarded_budget_used). */
    atomic_fetch_add_explicit(&guarded, made, memory_order_relaxed);
    for (size_t i = 1; i < made; i++)
        ox__stash_push(&w->stacks, guarded_at(bases[i], total));
    return guarded_at(bases[0], total);
}

/* A cached default-size stack, or NULL. An empty stash takes a chain
 * from the shared cache, under one lock. */
static ox__stack *cached_get(ox__worker *w)
{
    if (w->stacks.count == 0 && !cache_looks_empty()) {
        ox__spin_lock(&cache.lock);
        ox__chain_link *chain = ox__chains_pop(&cache.warm);
        if (chain == NULL)
            chain = ox__chains_pop(&cache.cold);
        ox__locked_count_add(&cache.draws, 1);
        ox__spin_unlock(&cache.lock);
        ox__stash_fill(&w->stacks, chain);
    }
    return ox__stash_pop(&w->stacks);
}

ox__stack *ox__stack_get(ox__worker *w, size_t size)
{
    bool plain = size == OX_TASK_DEFAULT_STACK;
    ox__stack *s = plain ? cached_get(w) : NULL;
    if (s == NULL) {
        if (guarded_budget_used() && !evict_cached() && plain)
            s = slab_get(w);
        else
            s = plain ? map_guarded_batch(w) : map_guarded(size);
    }
    /* A recycled stack, or a fresh mapping where an unmapped one was:
     * AddressSanitizer's shadow still has the redzones of the frames that
     * its last task left behind (it never returned through them). */
    if (s != NULL)
        ox__san_stack_reuse(ox__stack_lo(s), ox__stack_size(s));
    return s;
}

/* Gives back the pages of s, but for its header's own page (the next task
 * touches it first). */
static void release_pages(ox__stack *s)
{
    size_t below = ox__stack_size(s);
    ox__sys_stack_release(ox__stack_lo(s), below - below % ox__sys_page_size());
}

/* Moves n of a worker's stashed stacks to the shared cache as one chain,
 * or unmaps them if it has no room for them. */
static void stash_give(ox__stash *stash, unsigned n)
{
    ox__chain_link *chain = ox__stash_cut(stash, n);
    if (chain == NULL)
        return;
    ox__spin_lock(&cache.lock);
    bool kept = cache_push_if_room(chain);
    ox__spin_unlock(&cache.lock);
    while (!kept && chain != NULL) {
        ox__chain_link *next = chain->next;
        unmap_guarded((ox__stack *)(void *)chain);
        chain = next;
    }
}

void ox__stack_cache_flush(ox__worker *w)
{
    stash_give(&w->stacks, w->stacks.count);
    slab_stash_give(&w->slab_stacks, w->slab_stacks.count);
}

void ox__stack_put(ox__worker *w, ox__stack *s)
{
    if (s->guard_size == 0) {
        slab_put(w, s);
        return;
    }
    size_t usable = ox__stack_size(s);
    if (usable < OX_TASK_DEFAULT_STACK || usable >= OX_TASK_DEFAULT_STACK + ox__sys_page_size()) {
        unmap_guarded(s); /* another size: not cached */
        return;
    }
    /* With the guarded budget used up, a worker's stash keeps only a few:
     * the others go where any worker finds them (cached_get), and
     * evict_cached for a task that cannot reuse them (another size). */
    if (guarded_budget_used() && w->stacks.count >= OVER_BUDGET_STASH)
        stash_give(&w->stacks, w->stacks.count - OVER_BUDGET_STASH / 2);
    else if (w->stacks.count == WORKER_STACKS)
        stash_give(&w->stacks, STASH_BATCH);
    ox__stash_push(&w->stacks, s);
}

size_t ox__stack_cache_draws(void)
{
    return ox__locked_count(&cache.draws);
}

bool ox__stack_cache_trimmable(void)
{
    return ox__chains_over(&cache.warm, STACK_WARM);
}

bool ox__stack_cache_trim(size_t most)
{
    for (size_t trimmed = 0; trimmed < most;) {
        ox__chain_link *chain = ox__chains_pop_over(&cache.lock, &cache.warm, STACK_WARM);
        if (chain == NULL)
            return false;
        /* Out of the lists meanwhile: nobody can take them, and the
         * cache may take in one chain more than STACK_CACHE. */
        for (ox__chain_link *l = chain; l != NULL; l = l->next, trimmed++)
            release_pages((ox__stack *)(void *)l);
        ox__spin_lock(&cache.lock);
        ox__chains_push(&cache.cold, chain);
        ox__spin_unlock(&cache.lock);
    }
    return true;
}

/* Called in the fault handler: is addr in the guard page of the task this
 * thread runs? Reads only this thread's worker and its task record. */
static const char *guard_owner(const void *addr)
{
    ox__worker *w = ox__worker_current();
    if (w == NULL || w->current == NULL || w->current->stack == NULL)
        return NULL;
    const ox_task *t = w->current;
    const char *lo = t->stack->base;
    /* A frame may skip a little past the guard page's bottom edge too. */
    if ((const char *)addr >= lo - (ptrdiff_t)64 * 1024 &&
        (const char *)addr < lo + t->stack->guard_size)
        return t->name ? t->name : "<unnamed>";
    return NULL;
}

void ox__stack_guard_install(void)
{
    ox__sys_guard_handler_install(guard_owner);
}
