/* stress_condvar - a bounded queue built from one mutex and two condvars,
 * many producers and consumers, random capacity, notify_one or notify_all,
 * plain or timed waits.
 *
 * Invariants: every item is consumed exactly once (a seen-bitmap), each
 * consumer sees each producer's items in increasing order (per-sender FIFO
 * through a FIFO queue), the queue never holds more than its capacity, and
 * nobody sleeps forever (a lost wake-up hangs the round: the soak's timeout
 * catches it, and the blocked-thread dump says where). */
#include "stress.h"

#include <stdatomic.h>

enum { MAX_PRODUCERS = 4, MAX_CONSUMERS = 4, MAX_CAPACITY = 8 };

typedef struct queue {
    ox_mutex m;
    ox_condvar not_empty, not_full;
    uint64_t items[MAX_CAPACITY];
    unsigned head, len, capacity;
    int producers_left; /* guarded by m */
    bool notify_all;
    bool timed;
} queue;

typedef struct actor {
    queue *q;
    int id;
    long count; /* producer: items to send */
    _Atomic uint8_t *seen;
    long per_producer;
    long consumed;
    stress_rng rng;
} actor;

static void wait(queue *q, ox_condvar *cv, stress_rng *rng)
{
    int rc;
    if (q->timed && stress_below(rng, 2) == 0) {
        rc = ox_condvar_wait_timeout(cv, &q->m, OX_MICROS(1 + stress_below(rng, 300)));
        STRESS_CHECK(rc == 0 || rc == OX_ETIMEDOUT, "wait_timeout: %s", ox_strerror(rc));
    } else {
        rc = ox_condvar_wait(cv, &q->m);
        STRESS_CHECK(rc == 0, "wait: %s", ox_strerror(rc));
    }
}

static void notify(queue *q, ox_condvar *cv)
{
    if (q->notify_all)
        ox_condvar_notify_all(cv);
    else
        ox_condvar_notify_one(cv);
}

static void *produce(void *arg)
{
    actor *a = arg;
    queue *q = a->q;
    for (long seq = 0; seq < a->count; seq++) {
        STRESS_CHECK(ox_mutex_lock(&q->m) == 0, "lock");
        while (q->len == q->capacity)
            wait(q, &q->not_full, &a->rng);
        q->items[(q->head + q->len) % q->capacity] = (uint64_t)a->id << 32 | (uint64_t)seq;
        q->len++;
        notify(q, &q->not_empty);
        ox_mutex_unlock(&q->m);
    }
    STRESS_CHECK(ox_mutex_lock(&q->m) == 0, "lock");
    q->producers_left--;
    ox_condvar_notify_all(&q->not_empty); /* consumers must see the end */
    ox_mutex_unlock(&q->m);
    return NULL;
}

static void *consume(void *arg)
{
    actor *a = arg;
    queue *q = a->q;
    long last[MAX_PRODUCERS];
    for (int i = 0; i < MAX_PRODUCERS; i++)
        last[i] = -1;
    for (;;) {
        STRESS_CHECK(ox_mutex_lock(&q->m) == 0, "lock");
        while (q->len == 0 && q->producers_left > 0)
            wait(q, &q->not_empty, &a->rng);
        if (q->len == 0) {
            ox_mutex_unlock(&q->m);
            return NULL;
        }
        STRESS_CHECK(q->len <= q->capacity, "queue holds %u > %u", q->len, q->capacity);
        uint64_t item = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->len--;
        notify(q, &q->not_full);
        ox_mutex_unlock(&q->m);
        int producer = (int)(item >> 32);
        long seq = (long)(item & 0xffffffffu);
        STRESS_CHECK(producer >= 0 && producer < MAX_PRODUCERS && seq < a->per_producer,
                     "garbage item %llx", (unsigned long long)item);
        STRESS_CHECK(seq > last[producer], "producer %d: %ld after %ld (FIFO broken)", producer,
                     seq, last[producer]);
        last[producer] = seq;
        uint8_t was = atomic_exchange_explicit(&a->seen[producer * a->per_producer + seq], 1,
                                               memory_order_relaxed);
        STRESS_CHECK(was == 0, "item %d/%ld consumed twice", producer, seq);
        a->consumed++;
    }
}

int main(int argc, char **argv)
{
    stress_init(argc, argv, "stress_condvar");
    stress_rng rng = stress_rng_for(0);
    ox_instant start = ox_instant_now();
    long rounds = 0;
    do {
        int np = 1 + (int)stress_below(&rng, MAX_PRODUCERS);
        int nc = 1 + (int)stress_below(&rng, MAX_CONSUMERS);
        long per = 100 + stress_below(&rng, 2000);
        queue q = {.m = OX_MUTEX_INIT,
                   .not_empty = OX_CONDVAR_INIT,
                   .not_full = OX_CONDVAR_INIT,
                   .capacity = 1 + stress_below(&rng, MAX_CAPACITY),
                   .producers_left = np,
                   .notify_all = stress_below(&rng, 2) == 0,
                   .timed = stress_below(&rng, 3) == 0};
        _Atomic uint8_t *seen = calloc((size_t)(MAX_PRODUCERS * per), 1);
        STRESS_CHECK(seen != NULL, "out of memory");
        actor a[MAX_PRODUCERS + MAX_CONSUMERS];
        ox_join_handle h[MAX_PRODUCERS + MAX_CONSUMERS];
        for (int i = 0; i < np + nc; i++) {
            a[i] = (actor){.q = &q,
                           .id = i < np ? i : i - np,
                           .count = per,
                           .seen = seen,
                           .per_producer = per,
                           .rng = stress_rng_for((uint64_t)rounds * 16 + (uint64_t)i + 1)};
            h[i] = stress_spawn(i < np ? produce : consume, &a[i]);
        }
        long consumed = 0;
        for (int i = 0; i < np + nc; i++) {
            stress_join(&h[i]);
            if (i >= np)
                consumed += a[i].consumed;
        }
        STRESS_CHECK(consumed == np * per, "consumed %ld of %ld items", consumed, np * per);
        for (long i = 0; i < np * per; i++)
            STRESS_CHECK(seen[i] == 1, "item %ld/%ld lost", i / per, i % per);
        free(seen);
        rounds++;
    } while (stress_time_left(start));
    printf("ok stress_condvar seed=%" PRIu64 " rounds=%ld\n", stress_seed, rounds);
    return 0;
}
