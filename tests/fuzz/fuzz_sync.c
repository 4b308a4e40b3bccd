/* fuzz_sync - a libFuzzer harness: the input is a script of channel and
 * lock operations run by a few threads at once.
 *
 * Input layout: byte 0 picks the thread count (2-4), byte 1 the channel
 * flavor (unbounded, rendezvous, bounded 1, bounded 2-33); every later byte
 * is one operation, dealt to the threads in turn (low 3 bits: which
 * operation; the rest: a small argument). Blocking operations all have a
 * short timeout, so any script ends. Invariants checked: every message
 * received was sent, at most once, and in per-sender order; after the
 * threads end, draining the channel accounts for every message sent (none
 * lost); the mutex-guarded counter equals the increments made; rwlock
 * readers never see a torn pair; mutual exclusion (a witness word).
 *
 *   make fuzz FUZZ_TIME=60        build (clang, ASan+UBSan) and run
 *   build/fuzz/fuzz_sync CRASH    replay one input
 */
#include "oxide.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_THREADS = 4, MAX_OPS = 512 };

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sync: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct world {
    ox_sender *tx;
    ox_receiver *rx;
    ox_mutex m;
    ox_rwlock rw;
    _Atomic int witness;
    long counter;            /* guarded by m */
    uint64_t pair_a, pair_b; /* guarded by rw */
    _Atomic uint8_t seen[MAX_THREADS][MAX_OPS];
} world;

typedef struct script {
    world *w;
    int id;
    const uint8_t *ops;
    size_t n_ops;
    long sent;
    long received;
    long increments;
    long last_seen[MAX_THREADS]; /* per sender, the last seq this thread received */
} script;

static void check_received(script *s, uint64_t msg)
{
    int sender = (int)(msg >> 32);
    long seq = (long)(msg & 0xffffffffu);
    FUZZ_CHECK(sender >= 0 && sender < MAX_THREADS && seq >= 0 && seq < MAX_OPS);
    FUZZ_CHECK(seq > s->last_seen[sender]); /* per-sender FIFO */
    s->last_seen[sender] = seq;
    FUZZ_CHECK(atomic_exchange(&s->w->seen[sender][seq], 1) == 0); /* not twice */
    s->received++;
}

static void mutex_section(script *s)
{
    world *w = s->w;
    FUZZ_CHECK(atomic_exchange_explicit(&w->witness, s->id + 1, memory_order_relaxed) == 0);
    w->counter++;
    s->increments++;
    FUZZ_CHECK(atomic_exchange_explicit(&w->witness, 0, memory_order_relaxed) == s->id + 1);
}

static void *run_script(void *arg)
{
    script *s = arg;
    world *w = s->w;
    long seq = 0;
    for (size_t i = 0; i < s->n_ops; i++) {
        unsigned op = s->ops[i] & 7, x = s->ops[i] >> 3;
        uint64_t msg = (uint64_t)s->id << 32 | (uint64_t)seq;
        uint64_t got;
        int rc;
        switch (op) {
        case 0:
            rc = ox_sender_send_timeout(w->tx, &msg, OX_MICROS(10 * x));
            FUZZ_CHECK(rc == 0 || rc == OX_ETIMEDOUT);
            if (rc == 0)
                seq++, s->sent++;
            break;
        case 1:
            rc = ox_sender_try_send(w->tx, &msg);
            FUZZ_CHECK(rc == 0 || rc == OX_EFULL);
            if (rc == 0)
                seq++, s->sent++;
            break;
        case 2:
            rc = ox_receiver_try_recv(w->rx, &got);
            FUZZ_CHECK(rc == 0 || rc == OX_EEMPTY);
            if (rc == 0)
                check_received(s, got);
            break;
        case 3:
            rc = ox_receiver_recv_timeout(w->rx, &got, OX_MICROS(10 * x));
            FUZZ_CHECK(rc == 0 || rc == OX_ETIMEDOUT);
            if (rc == 0)
                check_received(s, got);
            break;
        case 4:
            rc = ox_mutex_lock_timeout(&w->m, OX_MILLIS(1));
            if (rc == OX_ETIMEDOUT)
                break;
            FUZZ_CHECK(rc == 0);
            mutex_section(s);
            if (x & 1)
                ox_thread_yield();
            ox_mutex_unlock(&w->m);
            break;
        case 5:
            if (ox_mutex_try_lock(&w->m) == 0) {
                mutex_section(s);
                ox_mutex_unlock(&w->m);
            }
            break;
        case 6:
            FUZZ_CHECK(ox_rwlock_read(&w->rw) == 0);
            FUZZ_CHECK(w->pair_a == w->pair_b);
            ox_rwlock_read_unlock(&w->rw);
            break;
        default:
            FUZZ_CHECK(ox_rwlock_write(&w->rw) == 0);
            w->pair_a++;
            if (x & 1)
                ox_thread_yield();
            w->pair_b++;
            ox_rwlock_write_unlock(&w->rw);
            break;
        }
    }
    return NULL;
}

static size_t capacity_of(uint8_t b)
{
    switch (b & 3) {
    case 0:
        return OX_UNBOUNDED;
    case 1:
        return 0;
    case 2:
        return 1;
    default:
        return 2 + (b >> 3);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int n = 2 + data[0] % 3;
    static world w; /* big (the seen table): reused, reset below */
    memset(&w, 0, sizeof w);
    w.m = (ox_mutex)OX_MUTEX_INIT;
    w.rw = (ox_rwlock)OX_RWLOCK_INIT;
    FUZZ_CHECK(ox_channel(sizeof(uint64_t), capacity_of(data[1]), &w.tx, &w.rx) == 0);

    /* Deal the operations round-robin into per-thread scripts. */
    static uint8_t ops[MAX_THREADS][MAX_OPS];
    script s[MAX_THREADS];
    for (int t = 0; t < n; t++) {
        s[t] = (script){.w = &w, .id = t, .ops = ops[t]};
        for (int k = 0; k < MAX_THREADS; k++)
            s[t].last_seen[k] = -1;
    }
    for (size_t i = 2; i < size && (i - 2) / (size_t)n < MAX_OPS; i++) {
        script *t = &s[(i - 2) % (size_t)n];
        ops[t->id][t->n_ops++] = data[i];
    }

    ox_join_handle h[MAX_THREADS];
    for (int t = 0; t < n; t++)
        h[t] = ox_thread_spawn(run_script, &s[t]);
    long sent = 0, received = 0, increments = 0;
    for (int t = 0; t < n; t++) {
        FUZZ_CHECK(ox_thread_join(&h[t], NULL, NULL) == 0);
        sent += s[t].sent;
        received += s[t].received;
        increments += s[t].increments;
    }
    /* Drain: everything sent and not yet received is still buffered. */
    script drain = {.w = &w, .id = 0};
    for (int k = 0; k < MAX_THREADS; k++)
        drain.last_seen[k] = -1;
    ox_sender_drop(w.tx);
    uint64_t got;
    int rc;
    while ((rc = ox_receiver_try_recv(w.rx, &got)) == 0) {
        int sender = (int)(got >> 32);
        long seq = (long)(got & 0xffffffffu);
        FUZZ_CHECK(sender >= 0 && sender < MAX_THREADS && seq >= 0 && seq < MAX_OPS);
        FUZZ_CHECK(atomic_exchange(&w.seen[sender][seq], 1) == 0);
        received++;
    }
    FUZZ_CHECK(rc == OX_EDISCONNECTED);
    ox_receiver_drop(w.rx);
    FUZZ_CHECK(received == sent);
    for (int t = 0; t < n; t++)
        for (long q = 0; q < s[t].sent; q++)
            FUZZ_CHECK(atomic_load(&w.seen[t][q]) == 1);
    FUZZ_CHECK(w.counter == increments);
    FUZZ_CHECK(w.pair_a == w.pair_b);
    return 0;
}
