/* task.c - spawning, joining and aborting tasks; the current task, yield
 * and sleep. */
#include "sanitizer.h"
#include "task_internal.h"

#include "../common/dekker.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t next_id = 1;

static const ox__wait_site join_site = {.what = "task join", .cancellable = true};
static const ox__wait_site sleep_site = {.what = "task sleep", .cancellable = true};

void ox__task_release(ox_task *t)
{
    /* Release, then acquire on the last: the last owner sees every other
     * owner's writes before it frees (as Arc does). */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        ox__task_free(t);
}

/* The first code on a task's stack. */
static void task_entry(void *arg)
{
    ox_task *t = arg;
    ox__san_stack_arrive(NULL, &t->worker->sched_stack_bottom, &t->worker->sched_stack_size);
    ox_panic_payload *p = NULL;
    t->outcome = ox_catch_unwind(t->fn, t->arg, &t->result, &p);
    /* Relaxed: published by the release store of finished (retire). */
    atomic_store_explicit(&t->panic, p, memory_order_relaxed);
    ox__task_locals_destroy(t);
    ox__task_switch_out(t, OX__AFTER_EXIT, NULL);
    ox_abort("ox_task", "a finished task was resumed");
}

bool ox__task_prepare(ox__worker *w, ox_task *t)
{
    if (ox__park_unit_cancelled(&t->waiter)) {
        /* Aborted, or its runtime shut down, before it ever ran. */
        t->outcome = OX_ECANCELED;
        return false;
    }
    t->stack = ox__stack_get(w, t->stack_size);
    if (t->stack == NULL) {
        t->outcome = ENOMEM;
        return false;
    }
    t->stack_floor = ox__stack_floor(t->stack);
    t->san_fiber = ox__san_fiber_create();
    ox__ctx_make(&t->ctx, ox__stack_lo(t->stack), t->stack, task_entry, t);
    return true;
}

/* A worker takes ids ID_BATCH at a time: a counter all workers add to
 * was the hottest line of a spawn, bounced between their caches (perf on
 * skynet: 70% of ox__task_create's samples on the add). Go's goid cache
 * does the same. */
#define ID_BATCH 1024

static uint64_t new_task_id(void)
{
    ox__worker *w = ox__worker_current();
    if (w == NULL)
        /* Relaxed: ids need only be unique. */
        return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    if (w->next_task_id == w->task_ids_end) {
        /* Relaxed: as above. */
        w->next_task_id = atomic_fetch_add_explicit(&next_id, ID_BATCH, memory_order_relaxed);
        w->task_ids_end = w->next_task_id + ID_BATCH;
    }
    return w->next_task_id++;
}

int ox__task_create(const ox_task_builder *b, void *(*fn)(void *), void *arg, ox_task **out)
{
    if (fn == NULL)
        return OX_EINVAL;
    size_t name_len = 0;
    if (b->name != NULL) {
        name_len = strnlen(b->name, OX_THREAD_NAME_MAX + 1);
        if (name_len > OX_THREAD_NAME_MAX)
            return OX_ENAMETOOLONG;
    }
    ox_runtime *rt = b->runtime;
    if (rt == NULL) {
        ox_task *self = ox_task_current();
        rt = self != NULL ? self->rt : ox_runtime_default();
    }
    ox_task *t = ox__task_alloc();
    if (t == NULL)
        return ENOMEM;
    if (b->name != NULL && (t->name = strdup(b->name)) == NULL) {
        ox__task_free(t);
        return ENOMEM;
    }
    /* Its stack is taken when it first runs (ox__task_prepare). */
    t->stack_size = b->stack_size ? b->stack_size : rt->stack_size;
    t->waiter.ops = &ox__task_unit_ops;
    t->waiter.group_cancelled = &rt->closing; /* shutdown aborts every task */
    t->waiter.unit = t;
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->id = new_task_id();
    /* Who it is, for the layers below (the dump, the checker, panics). */
    t->waiter.task = (ox__unit_task){.name = t->name, .id = t->id, .held = &t->unwind};
    atomic_init(&t->refs, 2); /* the handle's and the runtime's */
    *out = t;
    return 0;
}

void ox__task_start(ox_task *t)
{
    ox__runtime_task_started(t->rt);
    ox__task_schedule(t, false);
}

int ox_task_builder_spawn(const ox_task_builder *b, void *(*fn)(void *), void *arg,
                          ox_task_handle *out)
{
    ox_task *t;
    int rc = ox__task_create(b, fn, arg, &t);
    if (rc != 0)
        return rc;
    ox__task_start(t);
    out->task = t;
    return 0;
}

ox_task_handle ox_task_spawn(void *(*fn)(void *), void *arg)
{
    if (fn == NULL)
        ox_abort("ox_task_spawn", "NULL task function");
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    ox_task_handle h;
    int rc = ox_task_builder_spawn(&b, fn, arg, &h);
    if (rc != 0)
        ox_abort("ox_task_spawn", "failed to spawn task: %s", ox_strerror(rc));
    return h;
}

static ox_task *handle_task(const ox_task_handle *h, const char *function)
{
    if (h == NULL || h->task == NULL)
        ox_abort(function, "the task handle was already joined or dropped");
    return h->task;
}

void ox__task_mark_finished(ox_task *t)
{
    /* Release: the outcome is visible to whoever sees FINISHED with
     * acquire (ox__task_has_finished, the wait below). Nothing is read
     * through a waiter's mark (its CAS is relaxed): no acquire. */
    uint32_t was = atomic_exchange_explicit(&t->finished, OX__TASK_FINISHED, memory_order_release);
    if (was & OX__TASK_THREAD_WATCHES)
        ox__park_wake_all(&t->finished); /* tasks, and the threads on the futex */
    else if (was & OX__TASK_TASK_WATCHES)
        ox__park_lot_wake(&t->finished, INT_MAX); /* tasks only: no system call */
}

bool ox__task_has_finished(ox_task *t)
{
    return atomic_load_explicit(&t->finished, memory_order_acquire) == OX__TASK_FINISHED;
}

int ox__task_wait_finished(ox_task *t, const ox__wait_site *site)
{
    uint32_t mark = ox__park_unit_get() != NULL ? OX__TASK_TASK_WATCHES : OX__TASK_THREAD_WATCHES;
    for (;;) {
        /* Acquire: pairs with the exchange in ox__task_mark_finished. */
        uint32_t seen = atomic_load_explicit(&t->finished, memory_order_acquire);
        if (seen == OX__TASK_FINISHED)
            return 0;
        /* Say we wait before we do. Relaxed: nothing is published through
         * the mark. The exchange in ox__task_mark_finished is an RMW on the
         * same word, so either it reads our mark (and wakes our kind of
         * waiter) or this CAS fails and the next load sees FINISHED. */
        if (!(seen & mark)) {
            if (!atomic_compare_exchange_strong_explicit(
                    &t->finished, &seen, seen | mark, memory_order_relaxed, memory_order_relaxed))
                continue;
            seen |= mark;
        }
        /* Another waiter's mark may change the word before we sleep: the
         * wait then returns at once, and we look again. */
        if (ox__park_wait(&t->finished, seen, OX_INSTANT_NEVER, site, t) == OX_ECANCELED)
            return OX_ECANCELED;
    }
}

int ox__task_collect(ox_task *t, void **result, ox_panic_payload **payload)
{
    int outcome = t->outcome;
    /* Relaxed: only who takes it first matters. A scope's end sees 0 for a
     * task that never ran if a hand join has reported it already. */
    if (outcome == ENOMEM &&
        atomic_exchange_explicit(&t->no_stack_taken, true, memory_order_relaxed))
        return 0;
    if (outcome == 0 && result != NULL)
        *result = t->result;
    if (outcome == OX_EPANICKED) {
        /* Acq_rel: whoever takes the payload owns it (a scope's end may
         * race a hand join); see the payload's writes. */
        *payload = atomic_exchange_explicit(&t->panic, NULL, memory_order_acq_rel);
    }
    return outcome;
}

int ox_task_join(ox_task_handle *h, void **result, ox_panic_payload **payload)
{
    ox_task *t = handle_task(h, "ox_task_join");
    if (t == ox_task_current())
        return OX_EDEADLK;
    if (ox__task_wait_finished(t, &join_site) == OX_ECANCELED)
        return OX_ECANCELED;
    h->task = NULL;
    ox_panic_payload *p = NULL;
    int outcome = ox__task_collect(t, result, &p);
    if (!t->scoped) /* a scoped handle borrows the scope's reference */
        ox__task_release(t);
    ox__panic_payload_hand(p, payload); /* last: its drop may panic */
    return outcome;
}

void ox_task_handle_drop(ox_task_handle *h)
{
    ox_task *t = handle_task(h, "ox_task_handle_drop");
    h->task = NULL;
    if (!t->scoped)          /* a scoped handle borrows the scope's reference */
        ox__task_release(t); /* an unjoined panic payload goes with the record */
}

bool ox_task_is_finished(const ox_task_handle *h)
{
    ox_task *t = handle_task(h, "ox_task_is_finished");
    return ox__task_has_finished(t);
}

void ox_task_abort(const ox_task_handle *h)
{
    ox_task *t = handle_task(h, "ox_task_abort");
    /* Seq_cst: the flag's half of the Dekker pair in park_lot.c. */
    OX__DEKKER_STORE(&t->waiter.cancelled, true);
    /* The handle keeps the record alive; a finished task's last wait
     * record no longer matters (expire finds it unlinked). */
    ox__park_lot_expire(&t->waiter, OX_ECANCELED);
}

int ox_task_block_on(void *(*fn)(void *), void *arg, void **result, ox_panic_payload **payload)
{
    ox_task_handle h = ox_task_spawn(fn, arg);
    return ox_task_join(&h, result, payload);
}

/* ---- the current task ---- */

ox_task *ox_task_current(void)
{
    ox__lot_waiter *w = ox__park_unit_get();
    return w != NULL ? ox__task_of(w) : NULL;
}

uint64_t ox_task_id(const ox_task *t)
{
    return t->id;
}

const char *ox_task_name(const ox_task *t)
{
    return t->name;
}

bool ox_task_is_cancelled(void)
{
    return ox__park_cancelled();
}

void ox_task_yield(void)
{
    ox_task *t = ox_task_current();
    if (t == NULL) {
        ox_thread_yield();
        return;
    }
    ox__task_switch_out(t, OX__AFTER_YIELD, NULL);
}

int ox_task_sleep_until(ox_instant deadline)
{
    ox_task *t = ox_task_current();
    if (t == NULL) {
        ox_thread_sleep_until(deadline);
        return 0;
    }
    for (;;) {
        int rc = ox__park_wait(&t->sleep_word, 0, deadline, &sleep_site, NULL);
        if (rc == OX_ETIMEDOUT)
            return 0;
        if (rc == OX_ECANCELED)
            return rc;
    }
}

int ox_task_sleep(ox_nanos duration)
{
    if (duration < 0)
        return ox_task_is_cancelled() ? OX_ECANCELED : 0;
    return ox_task_sleep_until(ox_instant_after(duration));
}
