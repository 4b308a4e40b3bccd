/* Guide §5, RwLock<T>: five readers share the lock while a writer waits its
 * turn, then changes the value.
 *
 * As in 05_mutex.c, main joins every thread, so the threads borrow main's
 * lock instead of sharing it through an Arc. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

struct shared {
    ox_rwlock lock;
    int value; /* guarded by lock */
};

struct reader_arg {
    struct shared *shared;
    int i;
};

static void *reader(void *arg)
{
    const struct reader_arg *r = arg;
    /* Acquire read lock */
    int rc = ox_rwlock_read(&r->shared->lock);
    if (rc == 0) {
        printf("Reader %d reads: %d\n", r->i, r->shared->value);
        ox_thread_sleep(OX_MILLIS(100));
        ox_rwlock_read_unlock(&r->shared->lock); /* the read guard goes out of scope */
    } else {
        /* A poisoned lock is held all the same: release it. */
        printf("Reader %d failed to acquire read lock: %s\n", r->i, ox_strerror(rc));
        ox_rwlock_read_unlock(&r->shared->lock);
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct shared *shared = arg;
    ox_thread_sleep(OX_MILLIS(50)); /* Let some readers go first */
    /* Acquire write lock */
    int rc = ox_rwlock_write(&shared->lock);
    if (rc == 0) {
        shared->value += 10;
        printf("Writer modified data to: %d\n", shared->value);
    } else {
        printf("Writer failed to acquire write lock: %s\n", ox_strerror(rc));
    }
    ox_rwlock_write_unlock(&shared->lock);
    return NULL;
}

int main(void)
{
    struct shared shared = {OX_RWLOCK_INIT, 5};
    struct reader_arg args[5];
    ox_join_handle handles[6];

    /* Multiple reader threads */
    for (int i = 0; i < 5; i++) {
        args[i] = (struct reader_arg){&shared, i};
        handles[i] = ox_thread_spawn(reader, &args[i]);
    }

    /* One writer thread */
    handles[5] = ox_thread_spawn(writer, &shared);

    for (int i = 0; i < 6; i++) {
        if (ox_thread_join(&handles[i], NULL, NULL) != 0)
            ox_panic("a thread panicked");
    }

    if (ox_rwlock_read(&shared.lock) != 0)
        ox_panic("PoisonError");
    printf("Final value: %d\n", shared.value);
    ox_rwlock_read_unlock(&shared.lock);
    return 0;
}
