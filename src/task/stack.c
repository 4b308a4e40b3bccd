/* stack.c - task stacks: a guarded mapping per task, with the task record
 * at its top, recycled through a small cache; and the overflow report.
 *
 *   base                 base+guard                          base+total
 *   | guard (PROT_NONE) | stack, growing down ...  | ox_task | name |
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
#include <stdlib.h>
#include <string.h>

#define GUARDED_MAX   16384 /* 32 768 mappings: half the default vm.max_map_count */
#define STACK_CACHE   GUARDED_MAX
#define STACK_WARM    1024 /* cached stacks that keep their pages while idle */
#define WORKER_STACKS 64   /* cached by each worker for its own spawns */
#define SLAB_STACKS   64
#define SLAB_NAME     63                 /* longest name a slab record holds */
#define SLAB_REDZONE  ((size_t)8 * 1024) /* an sp this near the bottom is an overflow */

/* Cached records, all of default size, in two lists linked through next. */
static struct {
    ox__spin lock;
    ox_task *warm, *cold;
    /* Written under lock, read outside it as hints. */
    _Atomic size_t warm_count, cold_count;
} cache;

/* The cache's lists; the caller holds cache.lock. The counts are read and
 * written relaxed: the lock orders their writes, and readers outside the
 * lock take them as hints (a plain load and store, no locked RMW). */
static size_t warm_count(void)
{
    return atomic_load_explicit(&cache.warm_count, memory_order_relaxed);
}

static void set_warm_count(size_t n)
{
    atomic_store_explicit(&cache.warm_count, n, memory_order_relaxed);
}

static size_t cold_count(void)
{
    return atomic_load_explicit(&cache.cold_count, memory_order_relaxed);
}

static void set_cold_count(size_t n)
{
    atomic_store_explicit(&cache.cold_count, n, memory_order_relaxed);
}

/* Whether the cache looks empty (a hint: its lock is then not worth
 * taking; a stack put there meanwhile is found next time). */
static bool cache_looks_empty(void)
{
    return warm_count() == 0 && cold_count() == 0;
}

static ox_task *pop_warm(void)
{
    ox_task *t = cache.warm;
    if (t != NULL) {
        cache.warm = t->next;
        set_warm_count(warm_count() - 1);
    }
    return t;
}

static ox_task *pop_cold(void)
{
    ox_task *t = cache.cold;
    if (t != NULL) {
        cache.cold = t->next;
        set_cold_count(cold_count() - 1);
    }
    return t;
}

static void push_warm(ox_task *t)
{
    t->next = cache.warm;
    cache.warm = t;
    set_warm_count(warm_count() + 1);
}

static void push_cold(ox_task *t)
{
    t->next = cache.cold;
    cache.cold = t;
    set_cold_count(cold_count() + 1);
}

static struct {
    ox__spin lock;
    ox_task *free; /* slab records, linked through next */
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

static size_t record_size(size_t name_len)
{
    return (sizeof(ox_task) + name_len + 1 + 63) & ~(size_t)63;
}

/* Readies a recycled record (its stack fields kept) for its next task:
 * every field zero, as a fresh mapping's, except the unwind record's
 * inline entries, which are read only below its depth (0 after
 * ox__unwind_free) and are most of the record. */
static void reset_record(ox_task *t)
{
    _Static_assert(offsetof(ox_task, unwind) + sizeof(ox__unwind_state) == sizeof(ox_task) &&
                       offsetof(ox__unwind_state, inline_entries) +
                               sizeof(((ox__unwind_state *)0)->inline_entries) ==
                           sizeof(ox__unwind_state),
                   "the inline entries end the record");
    void *base = t->stack_base;
    size_t total = t->stack_total, guard = t->guard_size;
    bool slab = t->slab;
    memset(t, 0, offsetof(ox_task, unwind) + offsetof(ox__unwind_state, inline_entries));
    t->stack_base = base;
    t->stack_total = total;
    t->guard_size = guard;
    t->slab = slab;
}

/* ---- each worker's own stashes ----
 * A worker reuses the records its own tasks' ends gave back, without the
 * shared cache's or the slabs' lock, and they are still in its CPU's
 * cache: taking one that another worker freed cost a spawn a cache miss
 * on the record, and the shared lock moved between the workers at every
 * spawn and free. A full stash gives half of itself back to the shared
 * list (a worker that frees more than it spawns); an empty one takes from
 * it one at a time. */

static ox_task *stash_pop(ox__stash *s)
{
    ox_task *t = s->head;
    if (t != NULL) {
        s->head = t->next;
        s->count--;
    }
    return t;
}

static void stash_push(ox__stash *s, ox_task *t)
{
    t->next = s->head;
    s->head = t;
    s->count++;
}

/* The caller holds slabs.lock. */
static void slabs_put(ox_task *t)
{
    t->next = slabs.free;
    slabs.free = t;
}

/* Gives n of s's slab records back to the slabs. */
static void slab_stash_give(ox__stash *s, unsigned n)
{
    ox__spin_lock(&slabs.lock);
    for (ox_task *t; n > 0 && (t = stash_pop(s)) != NULL; n--)
        slabs_put(t);
    ox__spin_unlock(&slabs.lock);
}

static void slab_free(ox_task *t)
{
    ox__worker *w = ox__worker_current();
    if (w == NULL) { /* a thread's join: straight back to the slabs */
        ox__spin_lock(&slabs.lock);
        slabs_put(t);
        ox__spin_unlock(&slabs.lock);
        return;
    }
    if (w->slab_stacks.count == WORKER_STACKS)
        slab_stash_give(&w->slab_stacks, WORKER_STACKS / 2);
    stash_push(&w->slab_stacks, t);
}

/* A default-size stack from a slab, or NULL if no slab can be mapped. */
static ox_task *slab_alloc(void)
{
    size_t rec = record_size(SLAB_NAME);
    size_t slot = (OX_TASK_DEFAULT_STACK + rec + 4095) & ~(size_t)4095;
    ox__worker *w = ox__worker_current();
    ox_task *t = w != NULL ? stash_pop(&w->slab_stacks) : NULL;
    if (t == NULL) {
        ox__spin_lock(&slabs.lock);
        t = slabs.free;
        if (t != NULL)
            slabs.free = t->next;
        ox__spin_unlock(&slabs.lock);
    }
    if (t == NULL) {
        void *base;
        size_t total;
        /* One mapping; its first page is a guard only for the first slot. */
        if (ox__sys_stack_map(slot * SLAB_STACKS, &base, &total) != 0)
            return NULL;
        char *first = (char *)base + total - slot * SLAB_STACKS;
        ox_task *chain = NULL;
        for (size_t i = 0; i < SLAB_STACKS; i++) {
            ox_task *x = (ox_task *)(first + (i + 1) * slot - rec);
            x->stack_base = first + i * slot;
            x->stack_total = slot;
            x->next = chain;
            chain = x;
        }
        t = chain;
        ox__spin_lock(&slabs.lock);
        ox_task *last = t->next;
        while (last != NULL && last->next != NULL)
            last = last->next;
        if (last != NULL) {
            last->next = slabs.free;
            slabs.free = t->next;
        }
        ox__spin_unlock(&slabs.lock);
    }
    ox__san_stack_reuse(t->stack_base, (size_t)((char *)t - (char *)t->stack_base));
    reset_record(t);
    t->slab = true; /* guard_size 0: no guard page */
    return t;
}

bool ox__stack_overflowed(const ox_task *t)
{
    return t->slab && (const char *)t->ctx.sp < (const char *)t->stack_base + SLAB_REDZONE;
}

/* Unmaps a guarded stack. Relaxed: guarded is a budget, not a
 * synchronisation (see ox__task_alloc). */
static void unmap_guarded(ox_task *t)
{
    ox__sys_stack_unmap(t->stack_base, t->stack_total);
    atomic_fetch_sub_explicit(&guarded, 1, memory_order_relaxed);
}

/* Unmaps a cached stack, cold first; false if none is cached. The
 * guarded budget is for live stacks: a cached one makes way for a task
 * that cannot take it (a named one, another size), which would otherwise
 * get a slab stack without a guard once a burst has filled the cache. */
static bool evict_cached(void)
{
    if (cache_looks_empty())
        return false;
    ox__spin_lock(&cache.lock);
    ox_task *t = pop_cold();
    if (t == NULL)
        t = pop_warm();
    ox__spin_unlock(&cache.lock);
    if (t == NULL)
        return false;
    unmap_guarded(t);
    return true;
}

ox_task *ox__task_alloc(size_t stack_size, size_t name_len)
{
    if (stack_size == OX_TASK_DEFAULT_STACK && name_len == 0) {
        ox__worker *w = ox__worker_current();
        ox_task *t = w != NULL ? stash_pop(&w->stacks) : NULL;
        if (t == NULL && !cache_looks_empty()) {
            ox__spin_lock(&cache.lock);
            t = pop_warm();
            if (t == NULL)
                t = pop_cold();
            ox__spin_unlock(&cache.lock);
        }
        if (t != NULL) {
            char *lo = (char *)t->stack_base + t->guard_size;
            ox__san_stack_reuse(lo, (size_t)((char *)t - lo));
            return t;
        }
    }
    /* Relaxed: a budget, not a synchronisation; overshooting it by a few
     * racing spawns is harmless. */
    if (atomic_load_explicit(&guarded, memory_order_relaxed) >= guarded_max() && !evict_cached() &&
        stack_size == OX_TASK_DEFAULT_STACK && name_len <= SLAB_NAME)
        return slab_alloc();
    size_t rec = record_size(name_len);
    void *base;
    size_t total;
    if (ox__sys_stack_map(stack_size + rec, &base, &total) != 0)
        return NULL;
    atomic_fetch_add_explicit(&guarded, 1, memory_order_relaxed);
    ox_task *t = (ox_task *)((char *)base + total - rec);
    /* A fresh mapping may sit where an unmapped stack was (a named task's,
     * which is not cached): AddressSanitizer's shadow still has the
     * redzones of that task's frames that never returned. */
    ox__san_stack_reuse(base, (size_t)((char *)t - (char *)base));
    memset(t, 0, sizeof *t);
    t->stack_base = base;
    t->stack_total = total;
    t->guard_size = ox__sys_page_size();
    return t;
}

/* Gives back the pages of t's stack, but for the record's own page (the
 * next task touches it first). */
static void release_pages(ox_task *t)
{
    char *lo = (char *)t->stack_base + t->guard_size; /* page-aligned */
    size_t below = (size_t)((char *)t - lo);
    ox__sys_stack_release(lo, below - below % ox__sys_page_size());
}

/* Puts a default-size stack, reset, in the shared cache; false if it is
 * full. Freed on a worker it stays warm until a worker idles or stops (the
 * callers of ox__stack_cache_trim). Freed by a thread (a join) past
 * STACK_WARM it goes cold at once: the workers may already sleep, and
 * would keep its pages for ever. */
static bool shared_put(ox_task *t, bool from_worker)
{
    /* A hint, so that the system call is made outside the lock. */
    bool cold = warm_count() >= STACK_WARM && !from_worker;
    if (cold)
        release_pages(t);
    ox__spin_lock(&cache.lock);
    bool kept = warm_count() + cold_count() < STACK_CACHE;
    if (kept && cold)
        push_cold(t);
    else if (kept)
        push_warm(t);
    ox__spin_unlock(&cache.lock);
    return kept;
}

/* Moves n of a worker's stashed stacks to the shared cache (or unmaps
 * them if it is full). */
static void stash_give(ox__stash *s, unsigned n)
{
    for (ox_task *t; n > 0 && (t = stash_pop(s)) != NULL; n--)
        if (!shared_put(t, true))
            unmap_guarded(t);
}

void ox__stack_cache_flush(ox__worker *w)
{
    stash_give(&w->stacks, w->stacks.count);
    slab_stash_give(&w->slab_stacks, w->slab_stacks.count);
}

/* Caches a default-size stack, on the calling worker if there is one;
 * false if the cache is full. */
static bool cache_put(ox_task *t)
{
    reset_record(t);
    ox__worker *w = ox__worker_current();
    /* With the guarded budget used up, it goes where evict_cached finds it
     * for a task that cannot reuse it (a named one): no worker's stash.
     * Relaxed: a budget, as in ox__task_alloc. */
    if (w == NULL || atomic_load_explicit(&guarded, memory_order_relaxed) >= guarded_max())
        return shared_put(t, w != NULL);
    if (w->stacks.count == WORKER_STACKS)
        stash_give(&w->stacks, WORKER_STACKS / 2);
    stash_push(&w->stacks, t);
    return true;
}

void ox__task_free(ox_task *t)
{
    /* A panic nobody joined goes with the record. Relaxed: we are the last
     * owner (ox__task_release's acquire). */
    ox_panic_payload_free(atomic_exchange_explicit(&t->panic, NULL, memory_order_relaxed));
    if (t->blocking) {
        free(t); /* blocking.c: a record without a stack */
        return;
    }
    ox__unwind_free(&t->unwind);
    if (t->slab) {
        slab_free(t);
        return;
    }
    size_t usable = t->stack_total - t->guard_size - record_size(0);
    bool plain = t->name == NULL && usable >= OX_TASK_DEFAULT_STACK &&
                 usable < OX_TASK_DEFAULT_STACK + ox__sys_page_size();
    if (plain && cache_put(t))
        return;
    unmap_guarded(t);
}

bool ox__stack_cache_trim(size_t most)
{
    if (warm_count() <= STACK_WARM) /* a hint; checked again under the lock */
        return false;
    for (size_t i = 0; i < most; i++) {
        ox__spin_lock(&cache.lock);
        ox_task *t = warm_count() > STACK_WARM ? pop_warm() : NULL;
        ox__spin_unlock(&cache.lock);
        if (t == NULL)
            return false;
        release_pages(t); /* out of the lists meanwhile: nobody can take it */
        ox__spin_lock(&cache.lock);
        push_cold(t);
        ox__spin_unlock(&cache.lock);
    }
    return true;
}

/* Called in the fault handler: is addr in the guard page of the task this
 * thread runs? Reads only this thread's worker and its task record. */
static const char *guard_owner(const void *addr)
{
    ox__worker *w = ox__worker_current();
    if (w == NULL || w->current == NULL)
        return NULL;
    const ox_task *t = w->current;
    const char *lo = t->stack_base;
    /* A frame may skip a little past the guard page's bottom edge too. */
    if ((const char *)addr >= lo - (ptrdiff_t)64 * 1024 && (const char *)addr < lo + t->guard_size)
        return t->name ? t->name : "<unnamed>";
    return NULL;
}

void ox__stack_guard_install(void)
{
    ox__sys_guard_handler_install(guard_owner);
}
