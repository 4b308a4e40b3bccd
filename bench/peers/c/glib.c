/* glib.c - the `glib` peer: GLib's GMutex, GRWLock, GCond and, for the
 * channel workloads' `unbounded` flavor, GAsyncQueue (GLib has no bounded
 * queue). Worker threads are plain pthreads (peer.h); only the measured
 * primitive comes from GLib.
 *
 * GAsyncQueue carries pointers and refuses NULL, so message i travels as
 * the pointer value i + 1 (an 8-byte integer, as in every other peer). */
#include "peer.h"

#include <glib.h>
#include <stdint.h>

/* ---- mutex, rwlock, condvar -------------------------------------------- */

#define PEER_NAME            "glib"
#define PEER_MUTEX_LOCK(m)   g_mutex_lock(m)
#define PEER_MUTEX_UNLOCK(m) g_mutex_unlock(m)
#define PEER_READ_LOCK(l)    g_rw_lock_reader_lock(l)
#define PEER_READ_UNLOCK(l)  g_rw_lock_reader_unlock(l)
#define PEER_WRITE_LOCK(l)   g_rw_lock_writer_lock(l)
#define PEER_WRITE_UNLOCK(l) g_rw_lock_writer_unlock(l)
#define PEER_COND_WAIT(c, m) g_cond_wait(c, m)
#define PEER_COND_SIGNAL(c)  g_cond_signal(c)

/* Statically allocated GLib locks and condvars need no initialisation. */
static GMutex mutex, cv_mutex;
static GRWLock rwlock;
static GCond cv;

#include "lock_workloads.h"

/* ---- channels: GAsyncQueue (unbounded) ---------------------------------- */

enum { CHAN_MSGS = 1000000, CHAN_SIDE = 4 };

typedef struct chan_job {
    GAsyncQueue *q;
    uint64_t first, count; /* sender: values first .. first+count-1 */
    uint64_t sum;          /* receiver: sum of what it received */
} chan_job;

static void chan_send(void *arg)
{
    chan_job *j = arg;
    for (uint64_t v = j->first; v < j->first + j->count; v++)
        g_async_queue_push(j->q, (gpointer)(uintptr_t)(v + 1));
}

static void chan_recv(void *arg)
{
    chan_job *j = arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < j->count; i++)
        sum += (uint64_t)(uintptr_t)g_async_queue_pop(j->q) - 1;
    j->sum = sum;
}

/* sum of 0 .. n-1: what the receivers must add up to */
static uint64_t expected_sum(uint64_t n)
{
    return n * (n - 1) / 2;
}

OX_BENCH(chan_seq_unbounded, "chan_seq_unbounded", "glib")
{
    GAsyncQueue *q = g_async_queue_new();
    chan_job j = {q, 0, CHAN_MSGS, 0};
    uint64_t t0 = ox_bench_now_ns();
    chan_send(&j);
    chan_recv(&j);
    uint64_t ns = ox_bench_now_ns() - t0;
    g_async_queue_unref(q);
    peer_check(j.sum == expected_sum(CHAN_MSGS), "chan_seq_unbounded");
    return (double)ns / CHAN_MSGS;
}

/* `senders` threads send CHAN_MSGS between them; `receivers` threads
 * receive them, or the main thread does when receivers == 0. */
static double chan_run(int senders, int receivers, const char *name)
{
    GAsyncQueue *q = g_async_queue_new();
    chan_job send_jobs[CHAN_SIDE], recv_jobs[CHAN_SIDE], main_job = {q, 0, CHAN_MSGS, 0};
    uint64_t per_sender = CHAN_MSGS / (uint64_t)senders;
    for (int i = 0; i < senders; i++)
        send_jobs[i] = (chan_job){q, per_sender * (uint64_t)i, per_sender, 0};
    for (int i = 0; i < receivers; i++)
        recv_jobs[i] = (chan_job){q, 0, CHAN_MSGS / (uint64_t)receivers, 0};
    peer_team tx, rx;
    peer_team_start(&tx, senders, chan_send, send_jobs, sizeof send_jobs[0]);
    peer_team_start(&rx, receivers, chan_recv, recv_jobs, sizeof recv_jobs[0]);
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&rx.gate, 1, memory_order_release);
    atomic_store_explicit(&tx.gate, 1, memory_order_release);
    if (receivers == 0)
        chan_recv(&main_job);
    peer_team_join(&tx);
    peer_team_join(&rx);
    uint64_t ns = ox_bench_now_ns() - t0;
    g_async_queue_unref(q);
    uint64_t sum = main_job.sum;
    for (int i = 0; i < receivers; i++)
        sum += recv_jobs[i].sum;
    peer_check(sum == expected_sum(CHAN_MSGS), name);
    return (double)ns / CHAN_MSGS;
}

OX_BENCH(chan_spsc_unbounded, "chan_spsc_unbounded", "glib")
{
    return chan_run(1, 0, "chan_spsc_unbounded");
}

OX_BENCH(chan_mpsc_unbounded, "chan_mpsc_unbounded", "glib")
{
    return chan_run(CHAN_SIDE, 0, "chan_mpsc_unbounded");
}

OX_BENCH(chan_mpmc_unbounded, "chan_mpmc_unbounded", "glib")
{
    return chan_run(CHAN_SIDE, CHAN_SIDE, "chan_mpmc_unbounded");
}
