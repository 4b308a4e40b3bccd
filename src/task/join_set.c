/* join_set.c - JoinSet: tasks joined in the order they finish (Tokio's
 * JoinSet), and the task scope built on it.
 *
 * A set owns one reference to each of its tasks. A task that finishes
 * moves from the running list to the done queue (retire calls
 * ox__join_set_task_done) and bumps `word`, which join_next waits on. The
 * set itself is shared by its owner and its running tasks (refs), so that
 * dropping the set while tasks still run frees it only when the last of
 * them has finished. */
#include "task_internal.h"

#include "../common/dekker.h"

#include <errno.h>
#include <stdlib.h>

struct ox_join_set {
    ox__spin lock;
    _Atomic uint32_t word; /* bumped at every finish */
    _Atomic uint32_t refs; /* the owner's, and one per running task */
    ox_task *running;      /* doubly linked through set_prev/set_next */
    ox_task *done_head, *done_tail;
    size_t len; /* running + done, not yet joined */
    bool dropped;
};

static const ox__wait_site join_next_site = {.what = "task join_next", .cancellable = true};
/* Not a cancellation point: scoped tasks may borrow the waiter's stack. */
static const ox__wait_site scope_end_site = {.what = "task scope end"};

int ox_join_set_new(ox_join_set **out)
{
    ox_join_set *set = calloc(1, sizeof *set);
    if (set == NULL)
        return ENOMEM;
    atomic_init(&set->refs, 1);
    *out = set;
    return 0;
}

static void set_release(ox_join_set *set)
{
    /* Acq_rel: the last owner sees every other's writes before it frees. */
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
        free(set);
}

/* Makes t, created and not yet started, a running task of set. */
static void set_add(ox_join_set *set, ox_task *t)
{
    t->set = set;
    /* Relaxed: the task's reference; the set is not freed while the
     * caller holds the owner's. */
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    ox__spin_lock(&set->lock);
    t->set_prev = NULL;
    t->set_next = set->running;
    if (set->running != NULL)
        set->running->set_prev = t;
    set->running = t;
    set->len++;
    ox__spin_unlock(&set->lock);
}

int ox_join_set_spawn_with(ox_join_set *set, const ox_task_builder *b, void *(*fn)(void *),
                           void *arg, uint64_t *id)
{
    ox_task *t;
    int rc = ox__task_create(b, fn, arg, &t);
    if (rc != 0)
        return rc;
    set_add(set, t);
    if (id != NULL)
        *id = t->id;
    ox__task_start(t);
    return 0;
}

int ox_join_set_spawn(ox_join_set *set, void *(*fn)(void *), void *arg)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    return ox_join_set_spawn_with(set, &b, fn, arg, NULL);
}

void ox__join_set_task_done(ox_join_set *set, ox_task *t)
{
    ox__spin_lock(&set->lock);
    if (t->set_prev != NULL)
        t->set_prev->set_next = t->set_next;
    else
        set->running = t->set_next;
    if (t->set_next != NULL)
        t->set_next->set_prev = t->set_prev;
    bool dropped = set->dropped;
    if (!dropped) {
        t->set_next = NULL;
        if (set->done_tail != NULL)
            set->done_tail->set_next = t;
        else
            set->done_head = t;
        set->done_tail = t;
        /* Release: join_next's acquire load sees the queue change (it also
         * takes the lock; this orders its wait's re-check). */
        atomic_fetch_add_explicit(&set->word, 1, memory_order_release);
    }
    ox__spin_unlock(&set->lock);
    if (dropped)
        ox__task_release(t); /* nobody will join it */
    else
        ox__park_wake_all(&set->word);
    set_release(set);
}

int ox_join_set_join_next(ox_join_set *set, void **result, ox_panic_payload **payload, uint64_t *id)
{
    return ox_join_set_join_next_deadline(set, result, payload, id, OX_INSTANT_NEVER);
}

int ox_join_set_join_next_deadline(ox_join_set *set, void **result, ox_panic_payload **payload,
                                   uint64_t *id, ox_instant deadline)
{
    for (;;) {
        ox__spin_lock(&set->lock);
        ox_task *t = set->done_head;
        if (t != NULL) {
            set->done_head = t->set_next;
            if (set->done_head == NULL)
                set->done_tail = NULL;
            set->len--;
        }
        bool empty = t == NULL && set->running == NULL;
        /* Relaxed: read under the lock, which orders it with the finish
         * that bumps it. */
        uint32_t seen = atomic_load_explicit(&set->word, memory_order_relaxed);
        ox__spin_unlock(&set->lock);
        if (t != NULL) {
            if (id != NULL)
                *id = t->id;
            ox_panic_payload *p = NULL;
            int outcome = ox__task_collect(t, result, &p);
            ox__task_release(t);
            ox__panic_payload_hand(p, payload); /* last: its drop may panic */
            return outcome;
        }
        if (empty)
            return OX_EEMPTY;
        int rc = ox__park_wait(&set->word, seen, deadline, &join_next_site, set);
        if (rc != 0)
            return rc; /* OX_ETIMEDOUT or OX_ECANCELED */
    }
}

size_t ox_join_set_len(ox_join_set *set)
{
    ox__spin_lock(&set->lock);
    size_t n = set->len;
    ox__spin_unlock(&set->lock);
    return n;
}

void ox_join_set_abort_all(ox_join_set *set)
{
    /* Under the lock: a task in the running list has not retired, so its
     * record is alive (retire unlinks it under the same lock first). */
    ox__spin_lock(&set->lock);
    for (ox_task *t = set->running; t != NULL; t = t->set_next) {
        /* Seq_cst: the flag's half of the Dekker pair in park_lot.c. */
        OX__DEKKER_STORE(&t->waiter.cancelled, true);
        ox__park_lot_expire(&t->waiter, OX_ECANCELED);
    }
    ox__spin_unlock(&set->lock);
}

void ox_join_set_drop(ox_join_set *set)
{
    ox_join_set_abort_all(set);
    ox__spin_lock(&set->lock);
    set->dropped = true;
    ox_task *done = set->done_head;
    set->done_head = set->done_tail = NULL;
    ox__spin_unlock(&set->lock);
    for (ox_task *t = done, *next; t != NULL; t = next) {
        next = t->set_next;
        ox__task_release(t);
    }
    set_release(set);
}

/* ---- the task scope ---- */

struct ox_task_scope {
    ox_join_set *set;
};

ox_task_handle ox_task_scope_spawn(ox_task_scope *scope, void *(*fn)(void *), void *arg)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    ox_task_handle h;
    int rc = ox_task_scope_builder_spawn(scope, &b, fn, arg, &h);
    if (rc != 0)
        ox_abort("ox_task_scope_spawn", "failed to spawn task: %s", ox_strerror(rc));
    return h;
}

int ox_task_scope_builder_spawn(ox_task_scope *scope, const ox_task_builder *b, void *(*fn)(void *),
                                void *arg, ox_task_handle *out)
{
    ox_task *t;
    int rc = ox__task_create(b, fn, arg, &t);
    if (rc != 0)
        return rc;
    ox_join_set *set = scope->set;
    /* The handle borrows the set's reference: valid until the scope ends. */
    t->scoped = true;
    set_add(set, t);
    ox__task_start(t);
    out->task = t;
    return 0;
}

typedef struct scope_call {
    void (*body)(ox_task_scope *, void *);
    ox_task_scope *scope;
    void *arg;
} scope_call;

static void *run_body(void *p)
{
    scope_call *call = p;
    call->body(call->scope, call->arg);
    return NULL;
}

void ox_task_scope_run(void (*body)(ox_task_scope *scope, void *arg), void *arg)
{
    if (body == NULL)
        ox_abort("ox_task_scope_run", "NULL body");
    ox_task_scope scope;
    int rc = ox_join_set_new(&scope.set);
    if (rc != 0)
        ox_abort("ox_task_scope_run", "out of memory");
    scope_call call = {body, &scope, arg};
    ox_panic_payload *body_panic = NULL;
    bool body_panicked = ox_catch_unwind(run_body, &call, NULL, &body_panic) == OX_EPANICKED;
    /* Every task is joined before we return: they may borrow our caller's
     * stack. Not a cancellation point: the borrow forbids leaving early. */
    bool task_panicked = false, task_never_ran = false;
    for (;;) {
        ox__spin_lock(&scope.set->lock);
        ox_task *t = scope.set->running;
        if (t != NULL) /* keep it alive while we wait (a hand join may drop it) */
            atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        ox__spin_unlock(&scope.set->lock);
        if (t == NULL)
            break;
        (void)ox__task_wait_finished(t, &scope_end_site); /* not cancellable */
        ox__task_release(t);
    }
    ox_panic_payload *p = NULL; /* clang-analyzer cannot see that every EPANICKED sets it */
    while ((rc = ox_join_set_join_next(scope.set, NULL, &p, NULL)) != OX_EEMPTY) {
        if (rc == OX_EPANICKED && p != NULL) { /* not already joined by hand */
            task_panicked = true;
            /* As for a thread scope's (src/thread/scope.c). */
            ox__panic_payload_free_or_abort(p, "ox_task_scope",
                                            "the payload of a scoped task that panicked and was "
                                            "not joined panicked on drop");
        }
        task_never_ran |= rc == ENOMEM; /* the borrowed work was not done */
    }
    ox_join_set_drop(scope.set);
    if (body_panicked)
        ox_panic_resume(body_panic);
    if (task_panicked)
        ox_panic("a scoped task panicked");
    if (task_never_ran)
        ox_panic("a scoped task got no stack and never ran");
}
