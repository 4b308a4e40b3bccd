/* arc.c - Arc and Weak (see oxide/arc.h for the layout and the counts).
 *
 * The orderings are Rust's Arc's:
 *   - increments are relaxed: a reference is only ever made from another
 *     one, so nothing needs publishing (except upgrade, below);
 *   - decrements are release, and the thread that takes a count to its
 *     last (strong to -1, weak to 0) acquires before it destroys anything
 *     (a CAS of strong from -1 to DEAD, a fence after weak): every other
 *     owner's use of the value happens-before the destruction;
 *   - upgrade's CAS is acquire on success, and only increments a strong
 *     count that is not negative, so a dropped value is never resurrected;
 *   - get_mut locks the weak count (1 -> LOCKED) before reading the strong
 *     count, so a concurrent downgrade cannot slip in between the two
 *     reads (downgrade waits while the weak count is LOCKED);
 *   - the last drop of an Arc alone (oxide/arc.h: one strong reference,
 *     no Weak ever) is a plain store, after an acquire load that plays the
 *     part of the decrement's acquire.
 */
#include "oxide/arc.h"

#include "oxide/panic.h"

#include "../check/chaos.h"
#include "../panic/unwind.h"
#include "../thread/park.h"

#include <stdlib.h>
#include <string.h>

/* The acquire half of "release decrement, acquire when it hits zero".
 * ThreadSanitizer does not model fences (gcc refuses them under it), so
 * there an acquire load of the counter just taken to zero gives the same
 * edge: it reads our own RMW, the end of the release sequence of every
 * other owner's decrement (Rust's Arc does the same under TSan). */
#if defined(__SANITIZE_THREAD__)
#define OX__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OX__TSAN 1
#endif
#endif
#ifdef OX__TSAN
#define acquire_after_last(counter) ((void)atomic_load_explicit((counter), memory_order_acquire))
#else
#define acquire_after_last(counter) atomic_thread_fence(memory_order_acquire)
#endif

/* Which misuse a strong count found where it should not be tells of: an
 * overflow wraps the count from PTRDIFF_MAX to near PTRDIFF_MIN (and a
 * drop then back to near PTRDIFF_MAX), while a value's stray clones and
 * drops leave it near -1 or near OX__ARC_DEAD. */
static bool overflowed(ptrdiff_t strong)
{
    return strong < OX__ARC_DEAD + OX__ARC_DEAD / 2 || strong > -OX__ARC_DEAD;
}

OX__NORETURN static void abort_on_count(const void *payload, ptrdiff_t strong, const char *function)
{
    if (overflowed(strong))
        ox_abort(function,
                 "reference count of Arc %p overflowed (past PTRDIFF_MAX references: leaked "
                 "clones?)",
                 payload);
    ox_abort(function,
             "Arc %p has no strong reference left: it was dropped more times than cloned, or "
             "cloned after its last drop",
             payload);
}

void ox__arc_bad_count(const void *payload, const char *function)
{
    /* Relaxed: only read for the message. */
    abort_on_count(payload,
                   atomic_load_explicit(&ox__arc_header_of(payload)->strong, memory_order_relaxed),
                   function);
}

/* The out-of-line forms of the inline fast paths (for C++, function
 * pointers). */
void *(ox_arc_clone)(void *payload)
{
    return ox__arc_clone_inline(payload);
}

void(ox_arc_drop)(void *payload)
{
    ox__arc_drop_inline(payload);
}

size_t(ox_arc_strong_count)(const void *payload)
{
    return ox__arc_strong_count_inline(payload);
}

void *ox_arc_new(size_t size, void (*drop_fn)(void *payload))
{
    if (size > SIZE_MAX - OX__ARC_HEADER_SIZE)
        ox_abort("ox_arc_new", "capacity overflow: a payload of %zu bytes", size);
    /* malloc's blocks are aligned for max_align_t, and the header size is
     * a multiple of that alignment, so the payload is too. */
    ox__arc_header *h = calloc(1, OX__ARC_HEADER_SIZE + size);
    if (h == NULL)
        ox_abort("ox_arc_new", "memory allocation of %zu bytes failed", OX__ARC_HEADER_SIZE + size);
    /* Relaxed: the new value is published by whatever hands the handle to
     * another thread (spawn, a channel, a lock). */
    atomic_init(&h->strong, 0); /* one owner, stored minus one (oxide/arc.h) */
    atomic_init(&h->weak, 1);   /* the one held by all strong references together */
    h->drop_fn = drop_fn;
    h->size = size;
    return (char *)h + OX__ARC_HEADER_SIZE;
}

/* The number in a weak count that is not LOCKED (without WEAK_MADE). */
static size_t weak_number(size_t weak)
{
    return weak & ~OX__ARC_WEAK_MADE;
}

/* Gives up one count of weak; frees the block when it was the last. */
static void weak_release(ox__arc_header *h)
{
    /* Release: pairs with the acquire fence below in whichever thread
     * frees, so every use of the block (and drop_fn) happens-before free. */
    if (weak_number(atomic_fetch_sub_explicit(&h->weak, 1, memory_order_release)) != 1)
        return;
    acquire_after_last(&h->weak);
    free(h);
}

static void weak_release_cleanup(void *h)
{
    weak_release(h);
}

/* A decrement just took strong below 0: if to -1, the caller dropped the
 * last reference, and now owns the value; else it dropped one too many. */
static void claim_the_value(ox__arc_header *h, const void *payload, const char *function)
{
    ptrdiff_t last = -1;
    /* A CAS, not a load and a store: a stray clone (through a pointer that
     * holds no reference) may take -1 to 0 meanwhile, and with gcc's test
     * of the new count it passes; its drop then brings the count back to
     * -1 and here too. Only one of the two moves the count on from -1, and
     * the other aborts; a load would have let both run drop_fn (break41).
     * Acquire on success: it reads -1, our own decrement, the last of the
     * release sequence of every other owner's release decrement, so their
     * uses of the payload happen-before ours (Rust's Arc::drop has a fence
     * instead; ThreadSanitizer sees this one). Relaxed on failure: only
     * the message reads the count. */
    OX__CHAOS_POINT(); /* a stray clone and drop may run here */
    if (!atomic_compare_exchange_strong_explicit(&h->strong, &last, OX__ARC_DEAD,
                                                 memory_order_acquire, memory_order_relaxed))
        abort_on_count(payload, last, function);
}

/* The value is ours (strong is DEAD, and every other owner's use of it
 * happens-before this): runs drop_fn, then gives up the strong references'
 * weak count. */
static void destroy(ox__arc_header *h, void *payload)
{
    if (h->drop_fn == NULL) {
        weak_release(h);
        return;
    }
    /* If drop_fn panics, the strong references' weak count is still given
     * up on the way out (Rust's drop_slow drops its Weak guard while
     * unwinding): else the block would leak. */
    ox_cleanup_push(weak_release_cleanup, h);
    h->drop_fn(payload);
    ox__cleanup_pop_own(weak_release_cleanup, h, true);
}

void ox__arc_drop_last(void *payload)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    claim_the_value(h, payload, "ox_arc_drop");
    destroy(h, payload);
}

void ox__arc_drop_alone(void *payload)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    /* Relaxed: no other thread can reach the count (ox__arc_alone, whose
     * acquire load also ordered the other owners' uses before drop_fn).
     * DEAD, as the claim of a shared Arc's last drop leaves it. */
    OX__CHAOS_POINT(); /* if ox__arc_alone were wrong, a rival would write here */
    atomic_store_explicit(&h->strong, OX__ARC_DEAD, memory_order_relaxed);
    destroy(h, payload);
}

static void check_size(const ox__arc_header *h, const void *out, size_t size, const char *function)
{
    if (size != h->size)
        ox_abort(function, "a %zu-byte buffer for the %zu-byte value of Arc %p", size, h->size,
                 (const void *)((const char *)h + OX__ARC_HEADER_SIZE));
    if (out == NULL && size != 0)
        ox_abort(function, "NULL buffer");
}

/* The strong count just went 1 -> 0 in this thread, and the acquire is
 * done: move the value out and give up the strong references' weak. */
static void move_out(ox__arc_header *h, void *payload, void *out)
{
    if (h->size != 0)
        memcpy(out, payload, h->size);
    weak_release(h);
}

int ox_arc_try_unwrap(void *payload, void *out, size_t size)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    check_size(h, out, size, "ox_arc_try_unwrap");
    ptrdiff_t sole = 0;
    /* Acquire on success: pairs with the other owners' release decrements,
     * so their uses of the value happen-before we move it out (Rust's
     * try_unwrap: a relaxed CAS, then an acquire fence). From one owner
     * (0) straight to DEAD: like upgrade, nothing brings the count back.
     * Relaxed on failure: nothing is read. */
    if (!atomic_compare_exchange_strong_explicit(&h->strong, &sole, OX__ARC_DEAD,
                                                 memory_order_acquire, memory_order_relaxed)) {
        /* The caller's reference keeps the count at 0 or more: below is a
         * handle used after its last drop, not a busy Arc (break44). */
        if (sole < 0)
            abort_on_count(payload, sole, "ox_arc_try_unwrap");
        return OX_EBUSY;
    }
    move_out(h, payload, out);
    return 0;
}

bool ox_arc_into_inner(void *payload, void *out, size_t size)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    check_size(h, out, size, "ox_arc_into_inner");
    /* As ox_arc_drop: our uses happen-before whoever takes the value (or
     * runs drop_fn). */
    if (!ox__arc_strong_decrement_went_negative(h))
        return false;
    claim_the_value(h, payload, "ox_arc_into_inner");
    move_out(h, payload, out);
    return true;
}

/* The one empty Weak: only its address is used. */
static char empty_weak;
#define EMPTY_WEAK ((ox_weak *)(void *)&empty_weak)

ox_weak *ox_weak_new(void)
{
    return EMPTY_WEAK;
}

size_t ox_arc_weak_count(const void *payload)
{
    /* Acquire: as Rust's Arc::weak_count (a snapshot ordered after the
     * changes it counts). */
    size_t weak = atomic_load_explicit(&ox__arc_header_of(payload)->weak, memory_order_acquire);
    /* LOCKED: get_mut is checking, which it only does when no Weak exists. */
    return weak == OX__ARC_WEAK_LOCKED ? 0 : weak_number(weak) - 1;
}

void *ox_arc_get_mut(void *payload)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    /* The caller's reference keeps strong at 0 or more: below is a handle
     * used after its last drop, whose weak may read as no Weak's (WEAK_MADE
     * | 1, the last Weak's). Checked before weak is locked, so that Weak's
     * holder never meets a lock taken for a dead Arc (break44). Relaxed:
     * only this thread's own reference is asked about. */
    ptrdiff_t strong = atomic_load_explicit(&h->strong, memory_order_relaxed);
    if (strong < 0)
        abort_on_count(payload, strong, "ox_arc_get_mut");
    /* weak when no Weak exists: 1, with WEAK_MADE if one ever did. Relaxed:
     * only the CAS's expected value, which the CAS itself checks. */
    size_t no_weak = (atomic_load_explicit(&h->weak, memory_order_relaxed) & OX__ARC_WEAK_MADE) | 1;
    /* Acquire: pairs with the release decrement of weak in a Weak's drop,
     * so a Weak that upgraded (incremented strong) and was then dropped is
     * seen as the strong count it left. Locking keeps downgrade out until
     * the strong count is read. */
    if (!atomic_compare_exchange_strong_explicit(&h->weak, &no_weak, OX__ARC_WEAK_LOCKED,
                                                 memory_order_acquire, memory_order_relaxed))
        return NULL; /* a Weak exists (or another get_mut is checking) */
    /* Acquire: pairs with other owners' release decrements, so their uses
     * of the payload happen-before the caller's mutation. */
    bool unique = atomic_load_explicit(&h->strong, memory_order_acquire) == 0;
    /* Release: pairs with downgrade's acquire CAS. */
    atomic_store_explicit(&h->weak, no_weak, memory_order_release);
    return unique ? payload : NULL;
}

ox_weak *ox_arc_downgrade(void *payload)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    size_t weak = atomic_load_explicit(&h->weak, memory_order_relaxed);
    for (;;) {
        if (weak == OX__ARC_WEAK_LOCKED) {
            /* get_mut of another owner is checking uniqueness: a few
             * instructions. */
            ox__cpu_relax();
            weak = atomic_load_explicit(&h->weak, memory_order_relaxed);
            continue;
        }
        if (weak_number(weak) > OX__ARC_WEAK_MAX)
            ox_abort("ox_arc_downgrade", "weak count of Arc %p overflowed (%zu)", payload,
                     weak_number(weak));
        /* Acquire: pairs with get_mut's release store that unlocks. Sets
         * WEAK_MADE for good: from now on the Arc is never alone (a Weak
         * may upgrade at any time), which its owners see through their
         * acquire of the strong count (ox__arc_alone). */
        if (atomic_compare_exchange_weak_explicit(&h->weak, &weak, (weak + 1) | OX__ARC_WEAK_MADE,
                                                  memory_order_acquire, memory_order_relaxed))
            return (ox_weak *)(void *)h;
    }
}

void *ox_weak_upgrade(ox_weak *w)
{
    if (w == EMPTY_WEAK)
        return NULL;
    ox__arc_header *h = (ox__arc_header *)(void *)w;
    ptrdiff_t strong = atomic_load_explicit(&h->strong, memory_order_relaxed);
    for (;;) {
        /* Gone for good (DEAD), or going (-1): never back. */
        if (strong < 0)
            return NULL;
        /* Past OX__ARC_MAX_REFCOUNT references: Rust's upgrade aborts here. */
        if (strong == PTRDIFF_MAX)
            abort_on_count((char *)h + OX__ARC_HEADER_SIZE, strong, "ox_weak_upgrade");
        /* Acquire on success: the value's initialisation happens-before the
         * upgrader's use (Rust's Weak::upgrade). Relaxed on failure: we
         * only look at the fresh count and try again. */
        if (atomic_compare_exchange_weak_explicit(&h->strong, &strong, strong + 1,
                                                  memory_order_acquire, memory_order_relaxed))
            return (char *)h + OX__ARC_HEADER_SIZE;
    }
}

ox_weak *ox_weak_clone(ox_weak *w)
{
    if (w == EMPTY_WEAK)
        return w;
    ox__arc_header *h = (ox__arc_header *)(void *)w;
    /* Relaxed: as Arc's clone, made from an existing Weak. Never LOCKED
     * here: get_mut locks only when no Weak exists. */
    size_t old = weak_number(atomic_fetch_add_explicit(&h->weak, 1, memory_order_relaxed));
    if (old > OX__ARC_WEAK_MAX)
        ox_abort("ox_weak_clone", "weak count of Arc %p overflowed (%zu)",
                 (void *)((char *)h + OX__ARC_HEADER_SIZE), old);
    return w;
}

void ox_weak_drop(ox_weak *w)
{
    if (w != NULL && w != EMPTY_WEAK)
        weak_release((ox__arc_header *)(void *)w);
}

size_t ox_weak_strong_count(const ox_weak *w)
{
    if (w == EMPTY_WEAK)
        return 0;
    return ox__arc_strong_references((const ox__arc_header *)(const void *)w);
}

size_t ox_weak_weak_count(const ox_weak *w)
{
    if (w == EMPTY_WEAK)
        return 0;
    const ox__arc_header *h = (const ox__arc_header *)(const void *)w;
    if (ox__arc_strong_references(h) == 0)
        return 0;
    /* Acquire: a snapshot, as Rust's Weak::weak_count. */
    size_t weak = atomic_load_explicit(&h->weak, memory_order_acquire);
    /* The strong references' shared count is included while strong > 0. */
    return weak == OX__ARC_WEAK_LOCKED ? 0 : weak_number(weak) - 1;
}
