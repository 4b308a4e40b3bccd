/* Condvar (guide §12, "for more complex synchronization patterns where
 * threads need to wait for a condition to become true").
 *
 * First Rust's classic: main waits until a spawned thread says it has
 * started. Then a start signal for three workers with notify_all, and the
 * workers report back, main waiting with wait_while. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

struct state {
    ox_mutex lock;
    ox_condvar cvar;
    bool started; /* guarded by lock */
    bool go;
    int finished;
};

static void *starter(void *arg)
{
    struct state *s = arg;
    if (ox_mutex_lock(&s->lock) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    s->started = true;
    /* We notify the condvar that the value has changed. */
    ox_condvar_notify_one(&s->cvar);
    ox_mutex_unlock(&s->lock);
    return NULL;
}

struct worker_arg {
    struct state *s;
    int id;
};

static void *worker(void *arg)
{
    const struct worker_arg *w = arg;
    struct state *s = w->s;
    if (ox_mutex_lock(&s->lock) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    while (!s->go)
        if (ox_condvar_wait(&s->cvar, &s->lock) != 0)
            ox_panic("the lock is poisoned");
    printf("Worker %d got the signal\n", w->id);
    s->finished++;
    ox_condvar_notify_all(&s->cvar);
    ox_mutex_unlock(&s->lock);
    return NULL;
}

static bool workers_running(void *arg)
{
    const struct state *s = arg;
    return s->finished < 3;
}

int main(void)
{
    static struct state s = {OX_MUTEX_INIT, OX_CONDVAR_INIT, false, false, 0};

    ox_join_handle h = ox_thread_spawn(starter, &s);
    /* Wait for the thread to start up. */
    if (ox_mutex_lock(&s.lock) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    while (!s.started)
        if (ox_condvar_wait(&s.cvar, &s.lock) != 0)
            ox_panic("the lock is poisoned");
    printf("The spawned thread has started\n");
    ox_mutex_unlock(&s.lock);
    if (ox_thread_join(&h, NULL, NULL) != 0)
        ox_panic("a thread panicked"); /* Rust: join().unwrap() */

    struct worker_arg args[3];
    ox_join_handle workers[3];
    for (int i = 0; i < 3; i++) {
        args[i] = (struct worker_arg){&s, i};
        workers[i] = ox_thread_spawn(worker, &args[i]);
    }
    if (ox_mutex_lock(&s.lock) != 0)
        ox_panic("the lock is poisoned"); /* Rust: lock().unwrap() */
    s.go = true;
    ox_condvar_notify_all(&s.cvar); /* wakes every worker, one at a time */
    if (ox_condvar_wait_while(&s.cvar, &s.lock, workers_running, &s) != 0)
        ox_panic("the lock is poisoned");
    printf("All %d workers finished\n", s.finished);
    ox_mutex_unlock(&s.lock);
    for (int i = 0; i < 3; i++)
        if (ox_thread_join(&workers[i], NULL, NULL) != 0)
            ox_panic("a thread panicked"); /* Rust: join().unwrap() */
    return 0;
}
