/* oxide/arc.h - atomically reference-counted shared values (Rust's
 * std::sync::Arc and Weak).
 *
 *   typedef struct { int items[3]; } data;
 *   data *d = ox_arc_new(sizeof *d, NULL);   // strong count 1, zeroed
 *   data *d2 = ox_arc_clone(d);              // strong count 2, d2 == d
 *   ox_arc_drop(d2);                          // strong count 1
 *   ox_arc_drop(d);                           // 0: drop_fn runs, memory freed
 *
 * An Arc handle is the payload pointer itself: ox_arc_new() returns it and
 * ox_arc_clone() returns it again, counting one more owner. Each owner gives
 * its reference up with exactly one ox_arc_drop(). When the last strong
 * reference goes, drop_fn(payload) runs exactly once (in the thread that
 * dropped last); the memory is freed once the last Weak goes too. If
 * drop_fn panics, the panic goes on and the memory is still freed (once no
 * Weak remains), as in Rust.
 *
 * A Weak (ox_weak *) does not keep the value alive: ox_weak_upgrade() turns
 * it back into a strong reference while the value lives and returns NULL
 * once it is gone, never bringing it back.
 *
 * A clone or drop is one locked instruction, as Rust's; the last drop of
 * an Arc that never had a Weak is a load and a plain store instead.
 *
 * Like Rust's Arc, only the counting is thread-safe: the payload is shared,
 * so mutate it only through a lock or atomics (or when ox_arc_get_mut()
 * says this is the only reference). Counts beyond OX__ARC_MAX_REFCOUNT
 * (leaked clones) abort the process, as Rust does.
 *
 * Passing a pointer that ox_arc_new() did not return, or dropping more
 * times than cloned, is undefined; a drop, clone, get_mut or try_unwrap
 * after the last drop is detected and aborts while the memory is still
 * allocated (a Weak keeps it).
 */
#ifndef OXIDE_ARC_H
#define OXIDE_ARC_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* ---- private layout, in the header so that clone and drop inline ----
 * (C only: C++ calls the out-of-line functions.)
 *
 * [ ox__arc_header | padding to _Alignof(max_align_t) | payload ... ]
 *   ^ malloc'd block, also the ox_weak * value          ^ the Arc handle
 *
 * strong: the number of Arc references minus one, so 0 for a single
 * owner; OX__ARC_DEAD once the last one is dropped. Stored minus one, and
 * signed, so that the clone and the drop each test only the sign of the
 * count they just changed, which gcc and clang read from the flags of a
 * `lock add` (a `lock xadd` and a compare cost 3% more, docs/bench.md):
 *   - a clone that makes it negative cloned a dropped value (DEAD + 1) or
 *     went past PTRDIFF_MAX references (Rust's overflow abort);
 *   - a drop that makes it negative dropped the last reference (-1), or
 *     one too many (below -1).
 * weak: the number of Weak references plus one held collectively by all
 * strong references (so the memory stays while either kind exists), plus
 * OX__ARC_WEAK_MADE from the first ox_arc_downgrade() on, for good; or
 * OX__ARC_WEAK_LOCKED for the instant ox_arc_get_mut() checks uniqueness
 * (Rust's is_unique).
 *
 * So strong == 0 and weak == 1, read by a drop, means the reference it
 * takes is the only one and no Weak was ever made: no other thread can
 * reach the counts, and the drop stores instead of locking (ox__arc_alone
 * below).
 *
 * Tests may set the counts through ox__arc_header_of() (the overflow test
 * sets strong near OX__ARC_MAX_REFCOUNT instead of cloning 2^63 times);
 * nothing else may touch the header. */
#ifndef __cplusplus
typedef struct ox__arc_header {
    _Atomic ptrdiff_t strong;
    _Atomic size_t weak;
    void (*drop_fn)(void *payload);
    size_t size; /* of the payload: try_unwrap and into_inner check it */
} ox__arc_header;

#define OX__ARC_ALIGN _Alignof(max_align_t)
#define OX__ARC_HEADER_SIZE                                                                        \
    ((sizeof(ox__arc_header) + OX__ARC_ALIGN - 1) / OX__ARC_ALIGN * OX__ARC_ALIGN)
/* Rust's MAX_REFCOUNT (isize::MAX): even a burst of racing increments past
 * it cannot wrap the counter before one of them aborts. */
#define OX__ARC_MAX_REFCOUNT ((size_t)PTRDIFF_MAX)
#define OX__ARC_WEAK_LOCKED  SIZE_MAX
/* weak's sticky bit (2^62 on 64 bits). Weak counts abort past
 * OX__ARC_WEAK_MAX, far enough below it that racing increments past the
 * limit cannot carry into it before one of them aborts. */
#define OX__ARC_WEAK_MADE (SIZE_MAX / 4 + 1)
#define OX__ARC_WEAK_MAX  (SIZE_MAX / 8)
/* strong once the value is gone: far from both -1 and the wrap, so that
 * stray clones and drops of a dropped value keep it negative. */
#define OX__ARC_DEAD (PTRDIFF_MIN / 2)

static inline ox__arc_header *ox__arc_header_of(const void *payload)
{
    /* The header is mutable even through a const handle: the counts are atomics. */
    return (ox__arc_header *)(void *)((const char *)payload - OX__ARC_HEADER_SIZE);
}

OX_COLD OX__NORETURN void ox__arc_bad_count(const void *payload, const char *function);
OX_COLD void ox__arc_drop_last(void *payload);
OX_COLD void ox__arc_drop_alone(void *payload);

/* True if the strong reference that a drop takes is the only reference of
 * any kind, and no Weak was ever made. Then nobody else can change the
 * counts: every other reference was dropped (each before the value this
 * load reads, in the count's order), no Weak can upgrade, and nobody may
 * still borrow a reference being dropped. So the last drop may store DEAD
 * instead of a decrement and a claim. (Not a clone: it borrows its
 * reference, and two threads may clone one handle at once, both seeing 0:
 * break43.) Acquire: pairs with the other owners' release decrements, so
 * their uses of the value, and any downgrade they made before dropping,
 * happen-before drop_fn; hence the relaxed load of weak sees WEAK_MADE if
 * any owner ever downgraded. */
static inline bool ox__arc_alone(ox__arc_header *h)
{
    if (atomic_load_explicit(&h->strong, memory_order_acquire) != 0)
        return false;
#ifdef OX_CHAOS
    ox__chaos_point(); /* a Weak made before may upgrade and go here */
#endif
    return atomic_load_explicit(&h->weak, memory_order_relaxed) == 1;
}

/* Counts one more strong reference; true if the count went negative (see
 * the header's layout). Relaxed: a new reference can only be made from an
 * existing one, whose owner already has whatever happens-before it needs;
 * nothing is published here (Rust's Arc::clone). Each compiler gets the
 * spelling it turns into `lock add` + a sign jump: gcc tests the new count,
 * clang the old one (so clang also catches a clone racing the last drop,
 * and lets one more clone past PTRDIFF_MAX before the sign flips). */
static inline bool ox__arc_strong_increment_went_negative(ox__arc_header *h)
{
#if defined(__clang__)
    return atomic_fetch_add_explicit(&h->strong, 1, memory_order_relaxed) < 0;
#else
    return __atomic_add_fetch(&h->strong, 1, __ATOMIC_RELAXED) < 0;
#endif
}

/* Gives up one strong reference; true if that was the last (or one too
 * many). Release: this owner's uses of the payload happen-before the
 * drop_fn that the last owner runs after its acquire in
 * ox__arc_drop_last (Rust's Arc::drop). Spelled per compiler as above;
 * both test the new count here. */
static inline bool ox__arc_strong_decrement_went_negative(ox__arc_header *h)
{
#if defined(__clang__)
    return atomic_fetch_sub_explicit(&h->strong, 1, memory_order_release) <= 0;
#else
    return __atomic_sub_fetch(&h->strong, 1, __ATOMIC_RELEASE) < 0;
#endif
}

OX_MUST_USE static inline void *ox__arc_clone_inline(void *payload)
{
    if (OX_UNLIKELY(ox__arc_strong_increment_went_negative(ox__arc_header_of(payload))))
        ox__arc_bad_count(payload, "ox_arc_clone");
    return payload;
}

static inline void ox__arc_drop_inline(void *payload)
{
    ox__arc_header *h = ox__arc_header_of(payload);
    if (ox__arc_alone(h))
        ox__arc_drop_alone(payload);
    else if (OX_UNLIKELY(ox__arc_strong_decrement_went_negative(h)))
        ox__arc_drop_last(payload);
}

/* The number of strong references the stored count stands for. */
static inline size_t ox__arc_strong_references(const ox__arc_header *h)
{
    /* Acquire: as Rust's Arc::strong_count (and Weak's), so a count of 1
     * seen by the sole owner orders after the other owners' drops. */
    ptrdiff_t strong = atomic_load_explicit(&h->strong, memory_order_acquire);
    return strong < 0 ? 0 : (size_t)strong + 1;
}

static inline size_t ox__arc_strong_count_inline(const void *payload)
{
    return ox__arc_strong_references(ox__arc_header_of(payload));
}
#endif /* !__cplusplus */

/* ---- Arc ---- */

/* Allocates a zeroed payload of size bytes (0 is allowed), aligned for any
 * type (max_align_t), with strong count 1 and no Weak. drop_fn (may be
 * NULL) runs on the payload when the last strong reference is dropped; it
 * must not free the payload (oxide does). Returns the payload, owned by the
 * caller. Never returns NULL: aborts when out of memory, as Rust does. */
OX_MUST_USE void *ox_arc_new(size_t size, void (*drop_fn)(void *payload));

/* Counts one more strong reference to the value at payload (borrowed) and
 * returns payload, now also owned by the caller. Never blocks. (In C, this
 * and the next two are macros over inline fast paths.) */
OX_MUST_USE void *ox_arc_clone(void *payload);

/* Gives up one strong reference (taken). If it was the last, runs drop_fn
 * and frees the memory unless a Weak remains. Never blocks. */
void ox_arc_drop(void *payload);

/* The number of strong references (a snapshot: other threads may change it
 * at once). */
size_t ox_arc_strong_count(const void *payload);

/* In C: the three functions above, as their inline fast paths. */
#ifndef __cplusplus
#define ox_arc_clone(payload)        ox__arc_clone_inline(payload)
#define ox_arc_drop(payload)         ox__arc_drop_inline(payload)
#define ox_arc_strong_count(payload) ox__arc_strong_count_inline(payload)
#endif

/* The number of Weak references (a snapshot). */
size_t ox_arc_weak_count(const void *payload);

/* True if a and b are handles to the same value. */
static inline bool ox_arc_ptr_eq(const void *a, const void *b)
{
    return a == b;
}

/* payload if the caller's reference is the only one (strong count 1 and no
 * Weak), so the caller may mutate the value without synchronisation; NULL
 * otherwise. payload is borrowed. */
void *ox_arc_get_mut(void *payload);

/* Takes the value back out of the Arc if payload is its only strong
 * reference (Rust's Arc::try_unwrap): copies the payload's size bytes to out,
 * frees the Arc (drop_fn does not run: the value was moved out, and Weak
 * references can no longer upgrade) and returns 0; the caller's reference is
 * consumed. Returns OX_EBUSY if other strong references exist: nothing
 * happened, the caller still owns its reference. size must be the size
 * given to ox_arc_new (aborts otherwise: a short buffer would truncate). */
OX_MUST_USE int ox_arc_try_unwrap(void *payload, void *out, size_t size);

/* Gives up the caller's strong reference (taken), as ox_arc_drop; if it was
 * the last one, copies the value to out instead of running drop_fn, frees
 * the Arc and returns true; else returns false and out is untouched (Rust's
 * Arc::into_inner). When every owner calls this, exactly one gets the
 * value, even if they race (try_unwrap followed by a drop gives no such
 * promise). size is checked as in ox_arc_try_unwrap. */
OX_MUST_USE bool ox_arc_into_inner(void *payload, void *out, size_t size);

/* ---- Weak ---- */

typedef struct ox_weak ox_weak; /* opaque: the allocation, not the payload */

/* An empty Weak, pointing at no value (Rust's Weak::new): it never upgrades
 * (ox_weak_upgrade returns NULL), its counts are 0, and clone and drop work
 * on it as on any Weak. Allocates nothing. */
OX_MUST_USE ox_weak *ox_weak_new(void);

/* A new Weak reference to the value of the strong reference payload
 * (borrowed). The Weak is owned by the caller: give it up with
 * ox_weak_drop(). */
OX_MUST_USE ox_weak *ox_arc_downgrade(void *payload);

/* A new strong reference (the payload, owned by the caller) if the value
 * still lives, else NULL. w is borrowed. Never resurrects a dropped value. */
OX_MUST_USE void *ox_weak_upgrade(ox_weak *w);

/* Another Weak reference to the same value (w is borrowed; returns w, now
 * also owned by the caller). */
OX_MUST_USE ox_weak *ox_weak_clone(ox_weak *w);

/* Gives up a Weak reference (taken); frees the memory if it was the last
 * reference of any kind. NULL is ignored. */
void ox_weak_drop(ox_weak *w);

/* The strong count of w's value (0 once it is gone), and its weak count (0
 * once the value is gone, as Rust's Weak::weak_count). Snapshots. */
size_t ox_weak_strong_count(const ox_weak *w);
size_t ox_weak_weak_count(const ox_weak *w);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
