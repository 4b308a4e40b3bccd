/* queue.c - the run queues: each worker's bounded local queue (stealable)
 * and the runtime's injector (see task_internal.h). */
#include "task_internal.h"

#include <stdlib.h>

#define MASK (OX__LOCAL_QUEUE - 1)

bool ox__queue_is_empty(const ox__worker *w)
{
    /* Acquire on both: a hint for idle checks, paired with the release
     * stores of push and the CASes of pop/steal. */
    return atomic_load_explicit(&w->queue.head, memory_order_acquire) ==
           atomic_load_explicit(&w->queue.tail, memory_order_acquire);
}

size_t ox__queue_room(const ox__worker *w)
{
    /* Relaxed: the owner's tail; a head that moves on meanwhile (a steal)
     * only leaves more room than we say. */
    uint32_t tail = atomic_load_explicit(&w->queue.tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&w->queue.head, memory_order_relaxed);
    return OX__LOCAL_QUEUE - (tail - head);
}

static void injector_push_batch(ox__injector *q, ox__task_batch *b)
{
    b->next = NULL;
    ox__spin_lock(&q->lock);
    if (q->batches_tail != NULL)
        q->batches_tail->next = b;
    else
        q->batches = b;
    q->batches_tail = b;
    ox__locked_count_add(&q->len, b->end - b->first);
    ox__spin_unlock(&q->lock);
}

/* Moves half of a full queue, and t, to the injector: the queue stays
 * cheap to push to, and other workers find the overflow there. */
static void overflow(ox__worker *w, ox_task *t, uint32_t head)
{
    ox__local_queue *q = &w->queue;
    uint32_t half = OX__LOCAL_QUEUE / 2;
    /* Claim [head, head+half) as a stealer would; if a stealer got there
     * first, the queue has room again and the caller retries. */
    if (!atomic_compare_exchange_strong_explicit(&q->head, &head, head + half, memory_order_acquire,
                                                 memory_order_relaxed)) {
        ox__queue_push(w, t);
        return;
    }
    ox__task_batch *b = malloc(sizeof *b);
    if (b != NULL) {
        for (uint32_t i = 0; i < half; i++)
            b->tasks[i] = atomic_load_explicit(&q->slots[(head + i) & MASK], memory_order_relaxed);
        b->tasks[half] = t;
        b->first = 0;
        b->end = half + 1;
        injector_push_batch(&w->rt->injector, b);
        return;
    }
    /* Out of memory: linked through the records instead. */
    ox_task *first = atomic_load_explicit(&q->slots[head & MASK], memory_order_relaxed);
    ox_task *last = first;
    for (uint32_t i = 1; i < half; i++) {
        ox_task *x = atomic_load_explicit(&q->slots[(head + i) & MASK], memory_order_relaxed);
        last->next = x;
        last = x;
    }
    t->next = NULL;
    last->next = t;
    ox__injector_push(&w->rt->injector, first, t, half + 1);
}

void ox__queue_push(ox__worker *w, ox_task *t)
{
    ox__local_queue *q = &w->queue;
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed); /* ours */
    /* Acquire: slots below head have been read by whoever took them, so we
     * may overwrite them. */
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head >= OX__LOCAL_QUEUE) {
        overflow(w, t, head);
        return;
    }
    atomic_store_explicit(&q->slots[tail & MASK], t, memory_order_relaxed);
    /* Release: the slot, and the task's state, are visible to whoever
     * reads this tail and takes the slot. */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

ox_task *ox__queue_pop(ox__worker *w)
{
    ox__local_queue *q = &w->queue;
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    for (;;) {
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed); /* ours */
        if (head == tail)
            return NULL;
        ox_task *t = atomic_load_explicit(&q->slots[head & MASK], memory_order_relaxed);
        /* Acquire on success: pairs with a stealer's or our own earlier
         * release; on failure head is reloaded and we retry. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return t;
    }
}

ox_task *ox__queue_steal(ox__worker *thief, ox__worker *victim, uint32_t most)
{
    ox__local_queue *q = &victim->queue;
    ox_task *batch[OX__LOCAL_QUEUE / 2] = {NULL};
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t n;
    for (;;) {
        /* Acquire: pairs with the owner's release store of tail, so the
         * slots below it hold the tasks it pushed. */
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        n = tail - head;
        if (n == 0 || n > OX__LOCAL_QUEUE)
            return NULL; /* empty, or head moved past our stale tail */
        n -= n / 2;      /* half, rounded up */
        if (n > most)
            n = most;
        for (uint32_t i = 0; i < n; i++)
            batch[i] = atomic_load_explicit(&q->slots[(head + i) & MASK], memory_order_relaxed);
        /* The CAS validates the reads: if head moved, a slot we read may
         * have been taken and reused. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + n, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    /* The first runs now; the rest go to our own queue, which is empty
     * when we take more than one (a worker steals a batch only when it
     * has nothing). */
    for (uint32_t i = 1; i < n; i++)
        ox__queue_push(thief, batch[i]);
    return batch[0];
}

void ox__injector_push(ox__injector *q, ox_task *first, ox_task *last, size_t n)
{
    last->next = NULL;
    ox__spin_lock(&q->lock);
    if (q->tail != NULL)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    ox__locked_count_add(&q->len, n);
    ox__spin_unlock(&q->lock);
}

/* Takes the injector's next task; the caller holds its lock. Batches and
 * single pushes take turns, so that neither kind waits on the other. */
static ox_task *injector_take(ox__injector *q, ox__task_batch **used_up)
{
    ox_task *t = q->head;
    ox__task_batch *b = q->batches;
    if (b != NULL && (t == NULL || q->batch_turn)) {
        /* From the batch's array: no task record is read under the lock. */
        t = b->tasks[b->first++];
        if (b->first == b->end) {
            q->batches = b->next;
            if (q->batches == NULL)
                q->batches_tail = NULL;
            b->next = *used_up;
            *used_up = b;
        }
    } else if (t != NULL) {
        q->head = t->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    q->batch_turn = !q->batch_turn;
    return t;
}

static void free_batches(ox__task_batch *b)
{
    for (ox__task_batch *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}

size_t ox__injector_pop_many(ox__injector *q, ox_task **out, size_t most)
{
    /* A hint: a push we miss here wakes a worker that looks again
     * (runtime.c's idle protocol). */
    if (most == 0 || ox__locked_count(&q->len) == 0)
        return 0;
    ox__task_batch *used_up = NULL;
    size_t n = 0;
    ox__spin_lock(&q->lock);
    while (n < most && (out[n] = injector_take(q, &used_up)) != NULL)
        n++;
    ox__locked_count_sub(&q->len, n);
    ox__spin_unlock(&q->lock);
    free_batches(used_up);
    return n;
}

ox_task *ox__injector_pop(ox__injector *q)
{
    ox_task *t;
    return ox__injector_pop_many(q, &t, 1) == 1 ? t : NULL;
}
