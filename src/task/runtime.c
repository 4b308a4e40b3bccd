/* runtime.c - workers and scheduling.
 *
 * Each worker is an oxide thread running a scheduler loop on its own
 * stack; tasks run on theirs and switch back to the scheduler, which then
 * does what the task asked: requeue it (yield), release the lot's bucket
 * lock (a suspend), or retire it (exit). One exception: a task that
 * suspends right after waking another may switch straight to it (direct
 * hand-offs, below).
 *
 * Where a worker finds work, in order (Tokio's and Go's shape):
 *   1. every 61st time, the injector first, so that it cannot starve,
 *      else the head of another worker's queue (steal: a share of the
 *      injector waits there); the LIFO slot's task then goes to
 *      the queue (find_work);
 *   2. the LIFO slot: the task this worker woke last (a message hand-off
 *      runs next, on the same CPU, while its data is in cache), at most
 *      OX__LIFO_MAX times in a row so that two tasks ping-ponging cannot
 *      starve the queue;
 *   3. its own queue, then due timers, then a share of the injector,
 *      then ready descriptors (reactor.c);
 *   4. half of another worker's queue.
 * With nothing found it goes idle: it links itself on the idle stack,
 * looks once more, and sleeps until woken or until the earliest timer.
 *
 * Waking (Go's spinning Ms): new work wakes an idle worker only if no
 * other woken worker is still searching; the woken worker searches, and if
 * it was the last searcher when it finds work it wakes another, since more
 * may be queued (also when it finds the work only on its last look before
 * sleeping: leave_idle_list). So a burst of spawns from a thread
 * costs one or two wake-ups, not one per task.
 *
 * Making work visible and then checking `sched`, against changing `sched`
 * (becoming idle, or no longer searching) and then looking for work, is a
 * store-load pair on each side. Both sides make their step a
 * read-modify-write of `sched`, whose single modification order puts one
 * after the other: either the waker sees the worker idle and not
 * searching, or the worker's RMW reads the waker's and so sees its work.
 */
#include "sanitizer.h"
#include "task_internal.h"

#include "../check/chaos.h"
#include "../common/dekker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OX__LIFO_MAX         3
#define OX__GLOBAL_EVERY     61
#define OX__INJECTOR_SHARE   8       /* most taken from the injector at once */
#define OX__TRIM_BATCH       32      /* cached stacks given back per idle visit */
#define OX__TRIM_RECORDS     2048    /* pooled records freed per idle visit */
#define OX__TRIM_AFTER_NS    1000000 /* no draws this long before giving back a burst's memory */
#define OX__IDLE_SEARCH_NS   50000   /* how long a worker out of work looks before it sleeps */
#define OX__IDLE_SEARCH_SKIP 8       /* sleeps without a search after one that found nothing */
#define OX__IDLE_LOST_SKIP   64      /* and after one whose yield lost the CPU */

static _Thread_local ox__worker *current_worker;

static const ox__wait_site idle_site = {.what = "task worker idle"};

/* Out of line and never merged, as ox__park_unit_get (park.h says why). */
__attribute__((noinline)) ox__worker *ox__worker_current(void)
{
    ox__worker *w = current_worker;
    __asm__ volatile("" ::: "memory");
    return w;
}

/* ---- idle workers ---- */

#define SEARCHING_ONE 1u
#define IDLE_ONE      (1u << 16)
#define SEARCHING(s)  ((s) & (IDLE_ONE - 1))
#define IDLE(s)       ((s) >> 16)

/* Tells w, taken off the idle list, to wake up: it sleeps on its futex or
 * in the reactor's poller (reactor.c says why these orders). */
static void wake_worker(ox__worker *w)
{
    /* Seq_cst: pairs with the worker's acquire load after it wakes, and is
     * the waker's store of the Dekker pair in reactor.c. Only one of the two
     * wake-ups: the futex's is a system call. */
    OX__DEKKER_STORE(&w->sleep_word, 1);
    if (!ox__reactor_wake_worker(w))
        ox__park_wake_one(&w->sleep_word);
}

void ox__runtime_wake_idle(ox_runtime *rt)
{
    /* Acq_rel RMW, not a load: see the top of the file. */
    uint32_t s = atomic_fetch_add_explicit(&rt->sched, 0, memory_order_acq_rel);
    if (SEARCHING(s) != 0 || IDLE(s) == 0)
        return;
    ox__spin_lock(&rt->idle_lock);
    /* Rather one that sleeps on its futex than the one in the poller,
     * which then keeps watching the descriptors. Relaxed: a preference;
     * wake_worker does the ordered check. */
    ox__worker **p = &rt->idle_head;
    while (*p != NULL && (*p)->idle_next != NULL &&
           atomic_load_explicit(&(*p)->polling, memory_order_relaxed))
        p = &(*p)->idle_next;
    ox__worker *w = *p;
    if (w != NULL) {
        *p = w->idle_next;
        w->idle = false;
        w->searching = true;
        /* Relaxed: the wake below (seq_cst) hands the worker its state. */
        atomic_fetch_add_explicit(&rt->sched, SEARCHING_ONE - IDLE_ONE, memory_order_relaxed);
    }
    ox__spin_unlock(&rt->idle_lock);
    if (w != NULL)
        wake_worker(w);
}

/* The worker found work: if it was searching, it no longer is, and if it
 * was the last searcher, another idle worker may take the rest. */
static void found_work(ox__worker *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    /* Acq_rel: see the top of the file. */
    if (SEARCHING(atomic_fetch_sub_explicit(&w->rt->sched, SEARCHING_ONE, memory_order_acq_rel)) ==
        1)
        ox__runtime_wake_idle(w->rt);
}

static void idle_register(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    ox__spin_lock(&rt->idle_lock);
    w->idle = true;
    w->idle_next = rt->idle_head;
    rt->idle_head = w;
    uint32_t change = IDLE_ONE - (w->searching ? SEARCHING_ONE : 0);
    w->searching = false;
    /* Acq_rel: see the top of the file. */
    atomic_fetch_add_explicit(&rt->sched, change, memory_order_acq_rel);
    ox__spin_unlock(&rt->idle_lock);
}

/* Takes w off the idle list if it is still on it. search: w was a
 * searcher before it registered, and its last look found work
 * (sleep_until_work): a searcher again. Go's findrunnable does the same
 * when a spinning M finds work after it stopped spinning: a push that
 * came while we searched woke nobody (one searcher is enough), so we still
 * owe the wake-up found_work gives when we take the work: to the next
 * idle worker, for the rest of a burst, or to take over a poller we left
 * (a worker that found the poller taken sleeps on its futex: reactor.c).
 * Else a waker took w off the list already, and made it a searcher. */
static void leave_idle_list(ox__worker *w, bool search)
{
    ox_runtime *rt = w->rt;
    ox__spin_lock(&rt->idle_lock);
    if (w->idle) {
        ox__worker **p = &rt->idle_head;
        while (*p != w)
            p = &(*p)->idle_next;
        *p = w->idle_next;
        w->idle = false;
        w->searching = search; /* false while idle: idle_register cleared it */
        /* Relaxed: the list and the idle half change together under the
         * lock; found_work's acq_rel RMW is what a waker's check of the
         * searching half pairs with. */
        atomic_fetch_add_explicit(&rt->sched, (search ? SEARCHING_ONE : 0) - IDLE_ONE,
                                  memory_order_relaxed);
    }
    ox__spin_unlock(&rt->idle_lock);
}

static void idle_unregister(ox__worker *w)
{
    leave_idle_list(w, false);
}

static bool work_visible(ox_runtime *rt)
{
    /* The injector's count (a relaxed load): after idle_register's RMW,
     * a push that missed our registration is visible here (see the top
     * of the file). */
    if (ox__locked_count(&rt->injector.len) != 0)
        return true;
    for (size_t i = 0; i < rt->nworkers; i++)
        if (!ox__queue_is_empty(&rt->workers[i]))
            return true;
    return atomic_load_explicit(&rt->next_deadline, memory_order_relaxed) <= ox_instant_now().ns;
}

/* ---- scheduling ---- */

void ox__task_schedule(ox_task *t, bool lifo)
{
    /* Read before t is queued: from then on another worker may run it to
     * its end and free it (TSan saw the wake below read a freed record). */
    ox_runtime *rt = t->rt;
    ox__worker *w = ox__worker_current();
    if (w != NULL && w->rt == rt) {
        if (lifo) {
            ox_task *previous = w->lifo;
            w->lifo = t;
            if (previous == NULL)
                return; /* runs on this worker as soon as it is free */
            t = previous;
        }
        ox__queue_push(w, t);
        ox__runtime_wake_idle(rt);
        return;
    }
    /* From outside rt (a thread, another runtime's worker): once pushed,
     * t may run to its end, be joined and rt shut down before the wake
     * below reads rt. Relaxed increment: it comes before the push, whose
     * lock leads through t's run and retire to shutdown's load of the
     * retired counts (unfinished_tasks), and so to its load of
     * outside_wakers. */
    atomic_fetch_add_explicit(&rt->outside_wakers, 1, memory_order_relaxed);
    ox__injector_push(&rt->injector, t, t, 1);
    ox__runtime_wake_idle(rt);
    /* Release: our reads of rt happen-before shutdown frees it. */
    atomic_fetch_sub_explicit(&rt->outside_wakers, 1, memory_order_release);
}

/* Half of another worker's queue, at most `most` tasks, from a different
 * victim first each time. With most 1, for the every-61st look when the
 * injector has none: a worker whose own queue never runs dry (a task that
 * yields in a loop, a pair handing off) never steals a batch, and a share
 * of the injector (take_from_injector) waits in its taker's queue behind
 * the task it runs, which may compute for ever without yielding. */
static ox_task *steal(ox__worker *w, uint32_t most)
{
    ox_runtime *rt = w->rt;
    size_t n = rt->nworkers;
    /* xorshift: a different starting victim each time. */
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    size_t start = w->rng % n;
    for (size_t i = 0; i < n; i++) {
        ox__worker *victim = &rt->workers[(start + i) % n];
        if (victim == w)
            continue;
        ox_task *t = ox__queue_steal(w, victim, most);
        if (t != NULL)
            return t;
    }
    return NULL;
}

/* The LIFO slot, else the local queue. */
static ox_task *take_local(ox__worker *w)
{
    ox_task *t = w->lifo;
    if (t != NULL) {
        w->lifo = NULL;
        return t;
    }
    return ox__queue_pop(w);
}

/* Whether the LIFO slot's task may run next, counting its run: at most
 * OX__LIFO_MAX times in a row, so that two tasks ping-ponging cannot
 * starve the queue. With nothing queued it runs anyway, as the queue's
 * task would (the count starts over): pushing it to the empty queue and
 * popping it straight back would only cost a ping-pong. For the scheduler
 * (find_work) and a direct hand-off (direct_successor) alike. */
static bool slot_may_run(ox__worker *w)
{
    if (w->lifo_runs < OX__LIFO_MAX) {
        w->lifo_runs++;
        return true;
    }
    if (!ox__queue_is_empty(w))
        return false;
    w->lifo_runs = 0;
    return true;
}

/* The LIFO slot's task, passed over, goes to the back of the queue,
 * where another worker can steal it (none takes it from the slot). A task
 * runs here before it and may compute for ever without yielding: then
 * only another worker can take it, so wake one. */
static void slot_to_queue(ox__worker *w)
{
    ox__queue_push(w, w->lifo);
    w->lifo = NULL;
    ox__runtime_wake_idle(w->rt);
}

/* With our queue empty: the injector's next task, and a share of those
 * behind it for our queue, under one lock (Go's globrunqget): a burst
 * that overflowed a queue was otherwise taken one lock at a time by every
 * worker. A share, at most OX__INJECTOR_SHARE: the rest stays for the
 * other workers, and fewer go ahead of timers falling due meanwhile.
 * Alternating single rounds, share at most 1 / 4 / 8 / 16 / 32:
 *   task_spawn_join    172-184 / 146-159 / 132-142 / 130-139 / 125-132 ns
 *   task_skynet        352-372 / 348-364 / 323-351 / 340-350 / 389-396 ns
 *   task_sleep_p99_ns  0.30 / 0.34 / 0.38 / 0.51 / 0.67 ms (medians)
 * The share waits behind the task we run, which may compute for ever: a
 * worker awake takes from our queue (steal, also at its every-61st
 * look), and one that looked at the injector before our take and
 * then went to sleep is woken, as slot_to_queue does (helper-39 found
 * that window). */
static ox_task *take_from_injector(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    ox_task *taken[OX__INJECTOR_SHARE];
    size_t share = ox__locked_count(&rt->injector.len) / rt->nworkers + 1;
    size_t n = ox__injector_pop_many(&rt->injector, taken,
                                     share < OX__INJECTOR_SHARE ? share : OX__INJECTOR_SHARE);
    if (n == 0)
        return NULL;
    for (size_t i = 1; i < n; i++)
        ox__queue_push(w, taken[i]);
    if (n > 1)
        ox__runtime_wake_idle(rt);
    return taken[0];
}

static ox_task *find_work(ox__worker *w)
{
    ox_task *t;
    if (++w->ticks % OX__GLOBAL_EVERY == 0) {
        ox__timers_fire(w);
        ox__reactor_poll_now(w);
        if ((t = ox__injector_pop(&w->rt->injector)) != NULL || (t = steal(w, 1)) != NULL) {
            /* t runs before the slot's task (woken by the last task, or
             * just now by a due timer or a descriptor). */
            if (w->lifo != NULL)
                slot_to_queue(w);
            return t;
        }
    }
    if (w->lifo != NULL) {
        if (slot_may_run(w)) {
            t = w->lifo;
            w->lifo = NULL;
            return t;
        }
        slot_to_queue(w); /* behind the tasks queued (one that just yielded, say) */
    }
    w->lifo_runs = 0;
    if ((t = ox__queue_pop(w)) != NULL)
        return t;
    /* Due timers and ready descriptors wake their tasks onto our slot and
     * queue. Timers before the injector: behind a burst of spawns there, a
     * due sleep would wait for OX__GLOBAL_EVERY task starts. */
    ox__timers_fire(w);
    if ((t = take_local(w)) != NULL)
        return t;
    if ((t = take_from_injector(w)) != NULL)
        return t;
    if (ox__reactor_poll_now(w) && (t = take_local(w)) != NULL)
        return t;
    return steal(w, OX__LOCAL_QUEUE / 2);
}

static void retire(ox__worker *w, ox_task *t);

/* t has switched away: its saved stack pointer says if it overflowed. */
static void check_stack(const ox_task *t)
{
    if (OX_UNLIKELY((uintptr_t)t->ctx.sp < t->stack_floor))
        ox_abort("ox_task",
                 "task '%s' has overflowed its stack (an unguarded stack: seen at its switch)",
                 t->name ? t->name : "<unnamed>");
}

static void run(ox__worker *w, ox_task *t)
{
    if (t->stack == NULL && !ox__task_prepare(w, t)) {
        retire(w, t); /* it never runs */
        return;
    }
    w->current = t;
    t->worker = w;
    ox__park_unit_set(&t->waiter);
    ox__unwind_switch(&w->saved_unwind, &t->unwind);
    w->after = OX__AFTER_NONE;
    ox__san_fiber_switch(t->san_fiber);
    ox__san_stack_leave(&w->san_fake_stack, ox__stack_lo(t->stack), ox__stack_size(t->stack));
    ox__ctx_switch(&w->sched_ctx, &t->ctx);
    ox__san_stack_arrive(w->san_fake_stack, NULL, NULL);
    /* Back on the scheduler's stack, from the task that ran last: t, or
     * one that t (or one after it) handed the worker to directly. It is
     * stopped and still ours. */
    t = w->current;
    check_stack(t);
    ox__unwind_switch(&t->unwind, &w->saved_unwind);
    ox__park_unit_set(NULL);
    w->current = NULL;
    switch (w->after) {
    case OX__AFTER_YIELD:
        ox__queue_push(w, t);
        break;
    case OX__AFTER_SUSPEND:
        /* From here on a waker may resume t, on any worker. */
        ox__spin_unlock(w->after_unlock);
        break;
    case OX__AFTER_EXIT:
        retire(w, t);
        break;
    default:
        ox_abort("ox_task", "a task switched back without saying why");
    }
}

/* ---- direct hand-offs ----
 * A task that suspends right after waking another (a message hand-off:
 * the woken one is in the LIFO slot) switches straight to it, without the
 * scheduler's pass between: the pass is two context switches for one.
 * The rules of the LIFO slot hold as if the scheduler had taken it: at
 * most OX__LIFO_MAX runs in a row, and every OX__GLOBAL_EVERY-th run goes
 * through the scheduler, which looks at the injector, timers and poller.
 * A yield likewise switches straight to the task the scheduler would
 * take next from the queue (yield_successor).
 * What the scheduler does after the switch, unlocking the lot's bucket
 * for a suspend or queueing a yielder, the task switched to does as it
 * lands (landed): before that the task that left is still on its stack,
 * and a waker that took the lock, or a worker that stole it from the
 * queue, could run it elsewhere. */

/* The task to hand w to, or NULL: the scheduler's turn. */
static ox_task *direct_successor(ox__worker *w)
{
    ox_task *n = w->lifo;
    if (n == NULL || n->stack == NULL || (w->ticks + 1) % OX__GLOBAL_EVERY == 0 || !slot_may_run(w))
        return NULL;
    w->lifo = NULL;
    w->ticks++;
    return n;
}

/* A yield's successor: the queue's head, where the scheduler's pass would
 * find it first (none in the LIFO slot, not the tick that looks at the
 * injector, timers and poller), else NULL. The yielder goes to the back of
 * the queue as it would through the scheduler, pushed by its successor
 * as it lands. A task that never ran has no stack to switch to: the
 * scheduler starts it, from the LIFO slot, where it goes first as it
 * would from the queue. */
static ox_task *yield_successor(ox__worker *w)
{
    if (w->lifo != NULL || (w->ticks + 1) % OX__GLOBAL_EVERY == 0)
        return NULL;
    ox_task *n = ox__queue_pop(w);
    if (n == NULL)
        return NULL;
    w->lifo_runs = 0; /* as find_work, taking from the queue */
    if (n->stack == NULL) {
        w->lifo = n;
        return NULL;
    }
    w->ticks++;
    return n;
}

/* First thing in a task after a switch lands: t runs again, on t->worker. */
static void landed(ox_task *t)
{
    ox__worker *w = t->worker;
    ox_task *from = w->handed_from;
    if (from == NULL) { /* from the scheduler */
        ox__san_stack_arrive(t->san_fake_stack, &w->sched_stack_bottom, &w->sched_stack_size);
        return;
    }
    ox__san_stack_arrive(t->san_fake_stack, NULL, NULL);
    /* Only now that from is off its stack does t take the worker over:
     * until the switch, from's last frames ran there, and the guard-page
     * handler, a dump and the checker must see from as the one running. */
    w->current = t;
    ox__park_unit_set(&t->waiter);
    ox__unwind_switch(&from->unwind, &t->unwind);
    w->handed_from = NULL;
    check_stack(from);
    if (w->after == OX__AFTER_YIELD) {
        ox__queue_push(w, from);
    } else {
        /* From here on a waker may resume from, on any worker. */
        ox__spin_unlock(w->after_unlock);
    }
}

void ox__task_switch_out(ox_task *t, int after, ox__spin *unlock)
{
    ox__worker *w = t->worker;
    ox_task *n = after == OX__AFTER_SUSPEND ? direct_successor(w)
                 : after == OX__AFTER_YIELD ? yield_successor(w)
                                            : NULL;
    w->after = after;
    w->after_unlock = unlock;
    if (n != NULL) {
        n->worker = w; /* n takes the rest of w over as it lands */
        w->handed_from = t;
        ox__san_fiber_switch(n->san_fiber);
        ox__san_stack_leave(&t->san_fake_stack, ox__stack_lo(n->stack), ox__stack_size(n->stack));
        ox__ctx_switch(&t->ctx, &n->ctx);
    } else {
        ox__san_fiber_switch(w->san_fiber);
        ox__san_stack_leave(after == OX__AFTER_EXIT ? NULL : &t->san_fake_stack,
                            w->sched_stack_bottom, w->sched_stack_size);
        ox__ctx_switch(&t->ctx, &w->sched_ctx);
    }
    /* Resumed, maybe by another worker: t->worker is that one now. */
    landed(t);
}

/* ---- counting unfinished tasks ----
 * Shutdown waits until every task has retired. A shared count, or a list
 * of live tasks under a lock, costs each spawn and each retire a cache
 * line that the other workers write too (a spawn on one worker, its
 * retire on another): a third of task_spawn_join's time. So each worker
 * counts the tasks it started and retired, on its own line, and shutdown
 * sums them: retired first, then started. A retire's count comes after
 * the starts of every task its task spawned, and the release store and
 * acquire load carry that over, so a sum that reads a retire also reads
 * those starts; and a task's start is read if its parent's retire is, or
 * it was spawned before the shutdown began. So the difference is never
 * negative, and it is zero only when every such task has retired. */

/* Adds one to a count only its owner writes: a load and a store, no
 * read-modify-write. Release: what came before is seen by whoever reads
 * the new value (shutdown's sum). */
static void count_one(_Atomic uint64_t *count)
{
    atomic_store_explicit(count, atomic_load_explicit(count, memory_order_relaxed) + 1,
                          memory_order_release);
}

static uint64_t unfinished_tasks(ox_runtime *rt)
{
    uint64_t retired = 0, started = 0;
    /* Seq_cst: the load half of the pair with retire's store (below). */
    for (size_t i = 0; i < rt->nworkers; i++)
        retired += atomic_load_explicit(&rt->workers[i].retired, memory_order_seq_cst);
    for (size_t i = 0; i < rt->nworkers; i++)
        started += atomic_load_explicit(&rt->workers[i].started, memory_order_acquire);
    started += atomic_load_explicit(&rt->outside_started, memory_order_acquire);
    return started - retired;
}

void ox__runtime_task_started(ox_runtime *rt)
{
    ox__worker *w = ox__worker_current();
    if (w != NULL && w->rt == rt)
        count_one(&w->started);
    else /* Release: as count_one. */
        atomic_fetch_add_explicit(&rt->outside_started, 1, memory_order_release);
}

static void retire(ox__worker *w, ox_task *t)
{
    for (uint32_t i = 0; i < t->unwind.depth; i++) {
        const ox__unwind_entry *e = &t->unwind.entries[i];
        if (ox__entry_is_lock(e))
            ox_abort(
                "ox_task",
                "task '%s' returned holding %s %p (locked at %s:%d): it would stay locked forever",
                t->name ? t->name : "<unnamed>", e->u.lock_ops->kind, e->object,
                e->file ? e->file : "?", e->line);
    }
    if (t->stack != NULL) { /* it ran, and has returned: its stack is free */
        ox__stack_put(w, t->stack);
        t->stack = NULL;
        ox__san_fiber_destroy(t->san_fiber);
        t->san_fiber = NULL;
    }
    ox_runtime *rt = t->rt;
    ox__task_mark_finished(t);
    if (t->set != NULL)
        ox__join_set_task_done(t->set, t);
    /* Seq_cst store, then seq_cst load of closing: a Dekker pair with
     * shutdown's store of closing and its sum. Either it sees this retire
     * in its sum, or we see closing and wake it to sum again. */
    OX__DEKKER_STORE(&w->retired, atomic_load_explicit(&w->retired, memory_order_relaxed) + 1);
    if (atomic_load_explicit(&rt->closing, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&rt->live_word, 1, memory_order_release);
        ox__park_wake_all(&rt->live_word);
    }
    ox__task_release(t); /* the runtime's reference */
}

/* ---- the worker loop ---- */

/* Before it sleeps, a worker out of work looks a while longer, as a
 * searcher (Go's spinning M): while one worker spawns a burst, the other
 * otherwise ran out, slept and was woken again every few tasks, a futex
 * call each way (task_spawn_join: 18 000 of each per 100 000 tasks). As a
 * searcher it spares the spawner those wakes (ox__runtime_wake_idle wakes
 * nobody while one searches). Only one worker becomes a searcher this way
 * at a time. Returns true when work shows up: the caller looks again,
 * still a searcher, and found_work ends that.
 * The search also takes quick looks at the poller (when no other worker
 * holds it): in a 100-connection echo server the next readiness comes
 * within microseconds, and finding it there spares a sleep and a wake-up,
 * which cost more CPU than the looks (server CPU per round trip 3 942-
 * 4 194 ns against 4 403-4 658 without them, the epoll floor 3 583-3 747).
 * 50 µs, not 10: on this VM a sleep and its wake-up cost more CPU than
 * the longer search (the switch back from a sleep alone was 8% of that
 * server's profile). Between looks the searcher yields its CPU rather
 * than spin on it: a thread that wants the CPU (the load generator, on a
 * 2-CPU machine) runs at once, and the search does not keep it waiting.
 * Alternating rounds of that server, CPU per round trip over the epoll
 * floor's: 1.09-1.17 spinning 10 µs; 1.05-1.14 spinning 50; 1.03-1.07
 * yielding for 50 (1.04-1.08 with the lost-CPU skip below), with time
 * per round trip 0.88-0.91 of Tokio's. The HTTP
 * server's p99 was 4.2 ms spinning 50 µs (nginx 2.2), and 1.7-1.8 ms
 * yielding, as spinning 10. Alternating task_ rounds, quiet and beside
 * two busy loops, did not get slower.
 * A search that found nothing is not tried again for the next
 * OX__IDLE_SEARCH_SKIP times: before it looked at the poller, searching
 * before every sleep cost that server 15% more CPU per round trip. */
static bool search_before_sleep(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    if (w->searches_to_skip > 0) {
        w->searches_to_skip--;
        return false;
    }
    if (!w->searching) {
        /* Relaxed, both: being counted a searcher only spares wakers
         * their wake. The pair at the top of the file is closed by what
         * every search that finds nothing goes on to: idle_register's RMW
         * and the look after it. */
        uint32_t s = atomic_load_explicit(&rt->sched, memory_order_relaxed);
        if (SEARCHING(s) != 0 ||
            !atomic_compare_exchange_strong_explicit(&rt->sched, &s, s + SEARCHING_ONE,
                                                     memory_order_relaxed, memory_order_relaxed))
            return false;
        w->searching = true;
    }
    int64_t until = ox_instant_now().ns + OX__IDLE_SEARCH_NS;
    do {
        /* A yield that lost the CPU gave it to a thread that kept it: one
         * that computes on this CPU runs its slice, milliseconds, while we
         * still count as the searcher and wakers wake nobody. The look
         * after it finds what came meanwhile (a spawn, the due timer), so
         * without this the search "succeeded" and the next one was tried
         * too: every wake-up then cost a slice (a 500 us sleep ended
         * 3.5 ms late; test_break23.c). So this look is the last, and the
         * next OX__IDLE_LOST_SKIP idles sleep at once: a sleeper's wake-up
         * preempts that thread. */
        bool lost = ox__yield_lost_cpu(); /* see above: a search gives way */
        if (lost)
            w->searches_to_skip = OX__IDLE_LOST_SKIP;
        /* Acquire: as in the worker loop. */
        if (work_visible(rt) || atomic_load_explicit(&rt->shutting_down, memory_order_acquire))
            return true;
        /* Tasks its events woke are in our slot and queue now. */
        if (ox__reactor_poll_now(w))
            return true;
        if (lost)
            return false;
    } while (ox_instant_now().ns < until);
    w->searches_to_skip = OX__IDLE_SEARCH_SKIP;
    return false;
}

/* Idle time pays for giving back the last burst's memory: the stack
 * pages (stack.c) and the pooled task records (record.c), a batch at a
 * time, so that new work waits for one batch at most. Only once no worker
 * has drawn on the pool or the cache for OX__TRIM_AFTER_NS, as far as w's
 * idle visits saw, though: in the short gaps of a burst (more of them on a
 * busy machine, where a worker loses its CPU), what it gave back would be
 * taken again at once, and each give-back costs a TLB shootdown. Not
 * "idle for OX__TRIM_AFTER_NS without a break": a timer or a request more
 * often than that (a 1 kHz loop, a light steady load) would keep the
 * burst's memory for ever, and its tasks take none of it. Returns true if
 * it gave back a batch; else sets *wake_at to when it should, if it has
 * any to give back. */
static bool trim_if_idle_long(ox__worker *w, int64_t *wake_at)
{
    bool stacks = ox__stack_cache_trimmable(), records = ox__task_records_trimmable();
    if (!stacks && !records)
        return false;
    int64_t now = ox_instant_now().ns;
    size_t draws = ox__task_records_draws() + ox__stack_cache_draws();
    if (w->quiet_since == 0 || draws != w->draws_seen) {
        w->quiet_since = now;
        w->draws_seen = draws;
    }
    if (now - w->quiet_since < OX__TRIM_AFTER_NS) {
        *wake_at = w->quiet_since + OX__TRIM_AFTER_NS;
        return false;
    }
    /* Both, each a batch: new work waits for two at most. */
    bool trimmed = stacks && ox__stack_cache_trim(OX__TRIM_BATCH);
    return (records && ox__task_records_trim(OX__TRIM_RECORDS)) || trimmed;
}

static void sleep_until_work(ox__worker *w)
{
    ox_runtime *rt = w->rt;
    ox__timers_fire(w);
    if (w->lifo != NULL || !ox__queue_is_empty(w))
        return;
    int64_t trim_at = INT64_MAX;
    if (trim_if_idle_long(w, &trim_at) || search_before_sleep(w))
        return;
    /* Another thread may push work here, see us searching, and wake
     * nobody: the look after registering finds it. */
    OX__CHAOS_POINT();
    bool was_searching = w->searching;
    idle_register(w);
    if (work_visible(rt) || atomic_load_explicit(&rt->shutting_down, memory_order_acquire)) {
        leave_idle_list(w, was_searching);
        return;
    }
    /* Read after registering: a timer armed before our registration is
     * seen here; one armed after it wakes us (ox__timer_arm). Relaxed, as
     * work_visible's reads: ordered by idle_register's RMW. */
    int64_t next = atomic_load_explicit(&rt->next_deadline, memory_order_relaxed);
    if (trim_at < next)
        next = trim_at;
    if (!ox__reactor_sleep(w, next, idle_unregister)) {
        ox__park_wait(&w->sleep_word, 0, (ox_instant){next}, &idle_site, w);
        idle_unregister(w); /* if we woke by ourselves (timer, spurious) */
    }
    /* Acquire: pairs with the seq_cst store in wake_worker. */
    (void)atomic_load_explicit(&w->sleep_word, memory_order_acquire);
    atomic_store_explicit(&w->sleep_word, 0, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    ox__worker *w = arg;
    ox_runtime *rt = w->rt;
    current_worker = w;
    w->san_fiber = ox__san_fiber_current();
    if (ox__sys_alt_stack_enable(&w->alt_stack) != 0)
        w->alt_stack = NULL; /* an overflow then dies by SIGSEGV unexplained */
    for (;;) {
        ox_task *t = find_work(w);
        if (t != NULL) {
            found_work(w);
            run(w, t);
            continue;
        }
        /* Acquire: pairs with the release store in ox_runtime_shutdown,
         * which comes after every task has retired. */
        if (atomic_load_explicit(&rt->shutting_down, memory_order_acquire))
            break;
        sleep_until_work(w);
    }
    /* No idle visit comes after this one to give back the pages of the
     * stacks our last tasks left warm (stack.c): the process keeps them
     * for ever otherwise, up to the whole cache. Our own cached stacks
     * first join the shared cache, which outlives us. */
    ox__stack_cache_flush(w);
    ox__task_records_flush(w);
    while (ox__stack_cache_trim(OX__TRIM_BATCH))
        continue;
    while (ox__task_records_trim(OX__TRIM_RECORDS))
        continue;
    if (w->alt_stack != NULL)
        ox__sys_alt_stack_disable(w->alt_stack);
    current_worker = NULL;
    return NULL;
}

/* ---- runtimes ---- */

static ox_once guard_once = OX_ONCE_INIT;

static void install_guard(void *unused)
{
    (void)unused;
    ox__stack_guard_install();
}

/* As calloc, for objects with _Alignas(OX__CACHE_LINE) members. */
static void *calloc_lines(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = ox__alloc_lines(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

int ox_runtime_new(const ox_runtime_builder *b, ox_runtime **out)
{
    size_t workers = b->workers ? b->workers : ox_available_parallelism();
    const char *name = b->name ? b->name : "oxide-worker";
    size_t name_len = strnlen(name, OX_THREAD_NAME_MAX + 1);
    if (name_len + 24 > OX_THREAD_NAME_MAX)
        return OX_ENAMETOOLONG;
    if (workers > 4096)
        return OX_EINVAL;
    ox_once_call(&guard_once, install_guard, NULL);
    ox_runtime *rt = calloc_lines(1, sizeof *rt + name_len + 1);
    if (rt == NULL)
        return ENOMEM;
    rt->workers = calloc_lines(workers, sizeof *rt->workers);
    if (rt->workers == NULL) {
        free(rt);
        return ENOMEM;
    }
    memcpy(rt->name, name, name_len);
    rt->nworkers = workers;
    rt->stack_size = b->stack_size ? b->stack_size : OX_TASK_DEFAULT_STACK;
    atomic_init(&rt->next_deadline, INT64_MAX);
    atomic_init(&rt->io_poller, -1);
    char thread_name[OX_THREAD_NAME_MAX + 1];
    for (size_t i = 0; i < workers; i++) {
        ox__worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        w->rng = (uint32_t)(i * 2654435761u) | 1u;
        snprintf(thread_name, sizeof thread_name, "%s-%zu", rt->name, i);
        ox_thread_builder tb = OX_THREAD_BUILDER_INIT;
        ox_thread_builder_name(&tb, thread_name);
        int rc = ox_thread_builder_spawn(&tb, worker_main, w, &w->thread);
        if (rc != 0) {
            rt->nworkers = i;
            ox_runtime_shutdown(rt);
            return rc;
        }
    }
    *out = rt;
    return 0;
}

void ox_runtime_shutdown(ox_runtime *rt)
{
    if (ox_task_current() != NULL && ox_task_current()->rt == rt)
        ox_abort("ox_runtime_shutdown", "called from one of the runtime's own tasks");
    /* Abort every task (each task's waits read closing, and the walk ends
     * those under way), then wait for every one to return. Seq_cst: the
     * store half of the pairs with a wait (park_lot.c) and with retire. */
    OX__DEKKER_STORE(&rt->closing, true);
    ox__park_lot_cancel_group(&rt->closing);
    for (;;) {
        uint32_t seen = atomic_load_explicit(&rt->live_word, memory_order_acquire);
        if (unfinished_tasks(rt) == 0)
            break;
        ox__park_wait(&rt->live_word, seen, OX_INSTANT_NEVER, &idle_site, rt);
    }
    /* Release: the workers' acquire load sees it, and find nothing to do. */
    atomic_store_explicit(&rt->shutting_down, true, memory_order_release);
    for (size_t i = 0; i < rt->nworkers; i++)
        wake_worker(&rt->workers[i]);
    for (size_t i = 0; i < rt->nworkers; i++) {
        int rc = ox_thread_join(&rt->workers[i].thread, NULL, NULL);
        if (rc != 0) /* a panic in the scheduler itself: a bug in oxide */
            ox_abort("ox_runtime_shutdown", "worker %zu ended with %s", i, ox_strerror(rc));
    }
    /* Acquire: pairs with the release decrement in ox__task_schedule. */
    while (atomic_load_explicit(&rt->outside_wakers, memory_order_acquire) != 0)
        ox__sys_yield();       /* a waker between its push and its wake: brief */
    ox__io_forget_runtime(rt); /* sockets outlive it (io/socket.c) */
    ox__reactor_close(rt);
    free(rt->timers);
    free(rt->workers);
    free(rt);
}

static ox_runtime *default_runtime;
static ox_once default_once = OX_ONCE_INIT;

static void start_default(void *unused)
{
    (void)unused;
    ox_runtime_builder b = OX_RUNTIME_BUILDER_INIT;
    int rc = ox_runtime_new(&b, &default_runtime);
    if (rc != 0)
        ox_abort("ox_runtime_default", "cannot start the default runtime: %s", ox_strerror(rc));
}

ox_runtime *ox_runtime_default(void)
{
    ox_once_call(&default_once, start_default, NULL);
    return default_runtime;
}

/* ---- the unit operations the parking layer calls ---- */

static void unit_suspend(ox__lot_waiter *w, ox__spin *unlock_after)
{
    ox__task_switch_out(ox__task_of(w), OX__AFTER_SUSPEND, unlock_after);
}

static void unit_resume(ox__lot_waiter *w)
{
    ox__task_schedule(ox__task_of(w), true);
}

const ox__unit_ops ox__task_unit_ops = {
    .suspend = unit_suspend,
    .resume = unit_resume,
    .timer_arm = ox__timer_arm,
    .timer_disarm = ox__timer_disarm,
};
