/* scope.c - scoped threads (Rust's thread::scope, RFC 3151).
 *
 * Every thread spawned in a scope is pushed on the scope's list; when the
 * body returns or panics, the scope joins them all, then frees their
 * records. Scoped threads may spawn more scoped threads, so joining repeats
 * until the list stays empty: a thread can only add to the list while it
 * runs, and the OS join of that thread orders its pushes before our next
 * take of the list.
 */
#include "thread_internal.h"

#include "../panic/unwind.h"

#include "oxide/panic.h"

struct ox_scope {
    /* Newest first. Release on push / acquire on take: a taker sees the
     * pushed record's fields (its OS handle). */
    _Atomic(ox_thread *) spawned;
};

int ox_scope_builder_spawn(ox_scope *scope, const ox_thread_builder *b, void *(*fn)(void *),
                           void *arg, ox_scoped_handle *out)
{
    if (scope == NULL)
        ox_abort("ox_scope_spawn", "NULL scope");
    ox_thread *t;
    int rc = ox__thread_start(b, fn, arg, &t);
    if (rc != 0)
        return rc;
    ox_thread *head = atomic_load_explicit(&scope->spawned, memory_order_relaxed);
    do {
        t->scope_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&scope->spawned, &head, t, memory_order_release,
                                                    memory_order_relaxed));
    ox_join_handle h = ox__thread_handle(t);
    *out = (ox_scoped_handle){.thread = h.thread, .generation = h.generation};
    return 0;
}

ox_scoped_handle ox_scope_spawn(ox_scope *scope, void *(*fn)(void *), void *arg)
{
    if (fn == NULL)
        ox_abort("ox_scope_spawn", "NULL thread function");
    ox_scoped_handle h;
    int rc = ox_scope_builder_spawn(scope, &OX_THREAD_BUILDER_INIT, fn, arg, &h);
    if (rc != 0)
        ox__thread_spawn_failed(rc);
    return h;
}

/* True for the one caller that gets to join t. */
/* join_claimed: 0, then HAND_CLAIM (ox_scoped_join) or SCOPE_CLAIM (the
 * scope's end, which joins it). */
enum { HAND_CLAIM = 1, SCOPE_CLAIM = 2 };

static bool claim_join(ox_thread *t)
{
    /* Relaxed: the claim only decides who joins; the OS join orders data. */
    return atomic_exchange_explicit(&t->join_claimed, HAND_CLAIM, memory_order_relaxed) == 0;
}

static bool claim_join_for_the_scope(ox_thread *t)
{
    /* Relaxed, as above. Only the scope's own thread writes SCOPE_CLAIM. */
    uint32_t unclaimed = 0;
    return atomic_compare_exchange_strong_explicit(&t->join_claimed, &unclaimed, SCOPE_CLAIM,
                                                   memory_order_relaxed, memory_order_relaxed);
}

int ox_scoped_join(ox_scoped_handle *h, void **result, ox_panic_payload **payload)
{
    if (h == NULL || h->thread == NULL)
        ox_abort("ox_scoped_join", "scoped handle %p was already joined", (void *)h);
    ox_thread *t = h->thread;
    /* The scope frees its records when it returns: then the generation has
     * moved on (or, if an ox_thread_clone keeps the record, the mark). */
    if (ox__thread_handle_is_stale(t, h->generation) ||
        atomic_load_explicit(&t->scope_ended, memory_order_relaxed))
        ox_abort("ox_scoped_join", "scoped handle %p used after its scope ended", (void *)h);
    if (t == ox_thread_current())
        return OX_EDEADLK;
    if (!claim_join(t))
        ox_abort("ox_scoped_join",
                 "thread joined twice: scoped handle %p is a copy of a handle that was already "
                 "joined",
                 (void *)h);
    h->thread = NULL;
    ox_panic_payload *p = NULL;
    int rc = ox__thread_collect(t, result, &p);
    ox__panic_payload_hand(p, payload);
    return rc;
}

bool ox_scoped_handle_is_finished(const ox_scoped_handle *h)
{
    if (h == NULL || h->thread == NULL)
        ox_abort("ox_scoped_handle_is_finished", "scoped handle %p was already joined",
                 (const void *)h);
    /* Acquire: pairs with the release store in thread_main, as for
     * ox_join_handle_is_finished. */
    return atomic_load_explicit(&h->thread->finished, memory_order_acquire) != 0;
}

/* Joins every thread not joined by hand; returns how many of them
 * panicked. Records stay on *done until freed. */
static unsigned join_all(ox_scope *scope, ox_thread **done)
{
    unsigned panicked = 0;
    ox_thread *batch;
    while ((batch = atomic_exchange_explicit(&scope->spawned, NULL, memory_order_acquire))) {
        /* First the unjoined threads' outcomes are given up, as Rust drops
         * the ScopedJoinHandles at the body's end: a panic's payload is
         * dropped now if its thread has ended, else by the thread as it
         * ends, without waiting for the others (a drop that panics aborts:
         * thread.c, ox__thread_release_outcome). */
        for (ox_thread *t = batch; t != NULL; t = t->scope_next)
            if (claim_join_for_the_scope(t))
                ox__thread_release_outcome(t, "ox_thread_scope");
        while (batch) {
            ox_thread *t = batch;
            batch = t->scope_next;
            ox_panic_payload *dropped_already; /* NULL: see above */
            if (atomic_load_explicit(&t->join_claimed, memory_order_relaxed) == SCOPE_CLAIM &&
                ox__thread_collect(t, NULL, &dropped_already) == OX_EPANICKED)
                panicked++;
            t->scope_next = *done;
            *done = t;
        }
    }
    return panicked;
}

struct body_call {
    void (*body)(ox_scope *, void *);
    ox_scope *scope;
    void *arg;
};

static void *run_body(void *p)
{
    struct body_call *c = p;
    c->body(c->scope, c->arg);
    return NULL;
}

void ox_thread_scope(void (*body)(ox_scope *scope, void *arg), void *arg)
{
    if (body == NULL)
        ox_abort("ox_thread_scope", "NULL body");
    ox_scope scope = {NULL};
    struct body_call call = {body, &scope, arg};
    ox_panic_payload *body_panic = NULL;
    int rc = ox_catch_unwind(run_body, &call, NULL, &body_panic);

    ox_thread *done = NULL;
    unsigned panicked = join_all(&scope, &done);
    /* A thread joined by hand was collected by a thread that is itself in
     * the scope and joined above, so nobody uses these records any more. */
    while (done) {
        ox_thread *t = done;
        done = t->scope_next;
        atomic_store_explicit(&t->scope_ended, 1, memory_order_relaxed);
        ox_thread_drop(t); /* the thread's own reference is gone by now */
    }
    if (rc == OX_EPANICKED)
        ox_panic_resume(body_panic);
    if (panicked)
        ox_panic("a scoped thread panicked");
}
