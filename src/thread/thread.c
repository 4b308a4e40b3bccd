/* thread.c - spawning, joining, the current thread, parking, sleeping.
 *
 * A thread started by oxide runs thread_main(): it catches the function's
 * panic into its record, marks itself finished (Rust's is_finished), then
 * has the unit layer release what it holds (its thread-locals, its held
 * record, which must hold no lock, and our reference to its record). A
 * thread oxide did not start gets a record on first use of
 * ox_thread_current(), and the same end-of-thread work runs from the unit
 * layer's pthread key destructor (or, for the main thread, from an atexit
 * handler).
 */
#include "thread_internal.h"

#include "../check/chaos.h"
#include "../panic/unwind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local ox_thread *current OX__TLS_FAST;

/* Ids come from the unit layer (src/unit/unit.h): the main thread is
 * always 1, as in Rust, whether or not it asked for its record before
 * other threads were started; the others count from 2. */

static const ox__wait_site park_site = {.what = "thread park"};

/* ---- records ----
 * A retired record goes on this list instead of back to malloc, and the
 * next record_new takes it (with its generation bumped). So a stale handle
 * points at a record, never at freed memory, and the generation it
 * remembers tells that its thread is gone: join says "joined twice" or
 * "used after its scope ended" instead of an OS error on a reclaimed
 * thread. The list holds at most as many records as were ever alive at
 * once; it stays reachable, so leak checkers do not count it. */
static ox_thread *spare_records; /* guarded by records_lock */
static atomic_flag records_lock = ATOMIC_FLAG_INIT;

static void records_lock_take(void)
{
    /* Acquire, paired with the release in records_lock_give: the holder
     * sees the list as the last holder left it. Held for a few
     * instructions, on spawn and thread exit only. */
    while (atomic_flag_test_and_set_explicit(&records_lock, memory_order_acquire))
        ox__sys_yield();
    OX__CHAOS_POINT(); /* a fork may come while we hold it */
}

static void records_lock_give(void)
{
    atomic_flag_clear_explicit(&records_lock, memory_order_release);
}

/* fork: the lock is never held across it (docs/threads.md), or a child
 * that spawns, or ends its main thread by exit(), waits for it forever.
 * It is a leaf (nothing is taken while it is held), so its place among
 * the other fork handlers does not matter. */
static void records_before_fork(void)
{
    records_lock_take();
}

static void records_after_fork(void)
{
    records_lock_give();
}

static void record_retire(ox_thread *t)
{
    free(t->name);
    t->name = NULL;
    atomic_fetch_add_explicit(&t->generation, 1, memory_order_relaxed);
    records_lock_take();
    t->scope_next = spare_records;
    spare_records = t;
    records_lock_give();
}

static ox_thread *record_new(const char *name, size_t name_len, uint64_t id)
{
    char *name_copy = NULL;
    if (name) {
        name_copy = malloc(name_len + 1);
        if (name_copy == NULL)
            return NULL;
        memcpy(name_copy, name, name_len + 1);
    }
    records_lock_take();
    ox_thread *t = spare_records;
    if (t != NULL)
        spare_records = t->scope_next;
    records_lock_give();
    uint32_t generation = 0;
    if (t != NULL) {
        generation = atomic_load_explicit(&t->generation, memory_order_relaxed);
        memset(t, 0, sizeof *t);
    } else if ((t = calloc(1, sizeof *t)) == NULL) {
        free(name_copy);
        return NULL;
    }
    atomic_init(&t->generation, generation);
    atomic_init(&t->refs, 1);
    t->id = id;
    t->name = name_copy;
    return t;
}

ox_thread *ox_thread_clone(ox_thread *t)
{
    /* Relaxed, as Arc::clone: the caller already owns a reference, so the
     * record is alive; nothing is published by taking another. */
    if (atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed) >= UINT32_MAX / 2)
        ox_abort("ox_thread_clone", "reference count overflow on thread %llu",
                 (unsigned long long)t->id);
    return t;
}

void ox_thread_drop(ox_thread *t)
{
    if (t == NULL)
        return;
    /* Release, then acquire on the last reference, as Arc::drop: every
     * owner's use of the record happens-before the free. The acquire is a
     * load rather than a fence because ThreadSanitizer does not model
     * fences (Rust's Arc does the same under TSan). */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_release) != 1)
        return;
    (void)atomic_load_explicit(&t->refs, memory_order_acquire);
    record_retire(t); /* its outcome went with its last owner (ox__thread_release_outcome) */
}

/* At the thread's end this runs in the thread itself, before its
 * thread-locals are destroyed, as Rust drops the Packet inside the
 * thread's main. The payload's drop may not unwind through the thread's
 * end, a handle's drop or a scope's joins: Rust aborts too ("thread result
 * panicked on drop"). */
void ox__thread_release_outcome(ox_thread *t, const char *who)
{
    /* Acq_rel: the thread's writes of the outcome happen-before a last
     * owner's read, whichever of the two is last. */
    if (atomic_fetch_sub_explicit(&t->outcome_owners, 1, memory_order_acq_rel) != 1)
        return;
    ox_panic_payload *unjoined = t->panic;
    t->panic = NULL;
    if (unjoined != NULL)
        ox__panic_payload_free_or_abort(unjoined, who,
                                        "the payload of a thread that panicked and was not joined "
                                        "panicked on drop");
}

/* ---- end of a thread ---- */

/* The thread record's part of a thread's end (the unit layer runs it
 * after the thread-locals' destructors and the held record's release,
 * which may still ask for the name). */
static void release_record(bool check_locks)
{
    (void)check_locks;
    ox_thread *t = current;
    if (t == NULL)
        return; /* a thread with thread-locals or locks but no record */
    current = NULL;
    ox__unit_thread_publish(NULL, 0); /* the name goes with the record */
    ox_thread_drop(t);
}

/* Before main; after the unit layer's own state, which is static. The
 * records lock's fork handlers too. */
__attribute__((constructor(101))) static void register_release_record(void)
{
    ox__unit_exit_register(OX__UNIT_EXIT_THREAD, release_record);
    ox__sys_atfork(records_before_fork, records_after_fork, records_after_fork);
}

/* ---- the current thread ---- */

ox_thread *ox_thread_current(void)
{
    ox_thread *t = current;
    if (OX_LIKELY(t != NULL))
        return t;
    bool is_main = ox__sys_is_main_thread();
    /* The id the unit layer may already have given this thread. */
    t = record_new(is_main ? "main" : NULL, is_main ? 4 : 0, ox__unit_thread_id());
    if (t == NULL)
        ox_abort("ox_thread_current", "out of memory");
    current = t;
    ox__unit_thread_publish(t->name, t->id);
    ox__unit_exit_arm();
    return t;
}

uint64_t ox_thread_id(const ox_thread *t)
{
    return t->id;
}

const char *ox_thread_name(const ox_thread *t)
{
    return t->name;
}

/* ---- spawning and joining ---- */

ox_join_handle ox__thread_handle(ox_thread *t)
{
    return (ox_join_handle){
        .thread = t, .generation = atomic_load_explicit(&t->generation, memory_order_relaxed)};
}

bool ox__thread_handle_is_stale(ox_thread *t, uint32_t generation)
{
    return atomic_load_explicit(&t->generation, memory_order_relaxed) != generation;
}

static void *thread_main(void *arg)
{
    ox_thread *t = arg;
    current = t;
    ox__unit_thread_publish(t->name, t->id);
    ox__unit_exit_own();
    if (t->name)
        ox__sys_thread_set_os_name(t->name);
    t->outcome = ox_catch_unwind(t->fn, t->arg, &t->result, &t->panic);
    ox__thread_release_outcome(t, "thread exit");
    /* Finished once the function is done and the thread has given up its
     * share of the outcome, before the thread-locals' destructors (Rust's
     * is_finished: the thread has dropped its reference to the result
     * packet). So a handle dropped after is_finished() says yes is the
     * outcome's last owner. Release: is_finished() readers that see 1
     * (acquire) also see the outcome. Joiners are ordered by the OS join
     * instead. */
    atomic_store_explicit(&t->finished, 1, memory_order_release);
    /* Thread-locals, the held record, then our reference to the record.
     * A pthread key destructor of some other library runs after we return
     * and may still touch a thread-local: from now on this is a foreign
     * thread, released by the key. */
    ox__unit_exit_now(true);
    return NULL;
}

/* OX_MIN_STACK, read once (Rust's RUST_MIN_STACK): the stack size of
 * threads whose builder sets none. 0: the platform's default. */
static size_t default_stack_size(void)
{
    /* 0: not read yet; else the value plus one. Relaxed: every thread
     * that reads the variable computes the same value. */
    static _Atomic size_t cached;
    size_t c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (OX_LIKELY(c != 0))
        return c - 1;
    size_t bytes = 0;
    const char *env = getenv("OX_MIN_STACK");
    if (env != NULL && *env >= '0' && *env <= '9') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 10);
        /* As Rust: a value that does not parse is ignored. */
        if (errno == 0 && *end == '\0' && v < SIZE_MAX)
            bytes = (size_t)v;
    }
    atomic_store_explicit(&cached, bytes + 1, memory_order_relaxed);
    return bytes;
}

int ox__thread_start(const ox_thread_builder *b, void *(*fn)(void *), void *arg, ox_thread **out)
{
    if (fn == NULL)
        return OX_EINVAL;
    size_t name_len = 0;
    if (b->name) {
        name_len = strnlen(b->name, OX_THREAD_NAME_MAX + 1);
        if (name_len > OX_THREAD_NAME_MAX)
            return OX_ENAMETOOLONG;
    }
    ox_thread *t = record_new(b->name, name_len, ox__unit_new_thread_id());
    if (t == NULL)
        return ENOMEM;
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->refs, 2);           /* the thread's and the caller's */
    atomic_init(&t->outcome_owners, 2); /* the same two */
    size_t stack_size = b->has_stack_size ? b->stack_size : default_stack_size();
    int rc = ox__sys_thread_start(&t->os, stack_size, b->has_stack_size || stack_size != 0,
                                  thread_main, t);
    if (rc != 0) {
        record_retire(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ox__thread_collect(ox_thread *t, void **result, ox_panic_payload **payload)
{
    int rc = ox__sys_thread_join(t->os);
    if (rc != 0)
        ox_abort("ox_thread_join", "the OS refused to join thread %llu: %s",
                 (unsigned long long)t->id, ox_strerror(rc));
    /* The OS join orders everything the thread did before our reads. */
    if (t->outcome == 0) {
        if (result)
            *result = t->result;
        return 0;
    }
    *payload = t->panic;
    t->panic = NULL;
    return OX_EPANICKED;
}

void ox_thread_builder_name(ox_thread_builder *b, const char *name)
{
    b->name = name;
}

void ox_thread_builder_stack_size(ox_thread_builder *b, size_t bytes)
{
    b->stack_size = bytes;
    b->has_stack_size = true;
}

int ox_thread_builder_spawn(const ox_thread_builder *b, void *(*fn)(void *), void *arg,
                            ox_join_handle *out)
{
    ox_thread *t;
    int rc = ox__thread_start(b, fn, arg, &t);
    if (rc == 0)
        *out = ox__thread_handle(t);
    return rc;
}

ox_join_handle ox_thread_spawn(void *(*fn)(void *), void *arg)
{
    if (fn == NULL)
        ox_abort("ox_thread_spawn", "NULL thread function");
    ox_join_handle h;
    int rc = ox_thread_builder_spawn(&OX_THREAD_BUILDER_INIT, fn, arg, &h);
    if (rc != 0)
        ox__thread_spawn_failed(rc);
    return h;
}

void ox__thread_spawn_failed(int rc)
{
    /* Rust's spawn panics (catchable) with the io::Error. */
    ox_panic("failed to spawn thread: %s", ox_strerror(rc));
}

static ox_thread *live_handle(const ox_join_handle *h, const char *function)
{
    if (h == NULL)
        ox_abort(function, "NULL join handle");
    if (h->thread == NULL)
        ox_abort(function, "join handle %p was already joined or dropped", (const void *)h);
    ox_thread *t = h->thread;
    uint32_t spent = atomic_load_explicit(&t->handle_spent, memory_order_relaxed);
    /* A stale generation: the record was retired (and maybe reused), after
     * a copy was joined, or dropped and its thread ended. */
    if (ox__thread_handle_is_stale(t, h->generation))
        ox_abort(function,
                 "thread joined twice: join handle %p is a copy of a handle that was already "
                 "joined or dropped",
                 (const void *)h);
    if (spent == OX__HANDLE_JOINED)
        ox_abort(function,
                 "thread joined twice: join handle %p is a copy of a handle that was already "
                 "joined",
                 (const void *)h);
    if (spent == OX__HANDLE_DROPPED)
        ox_abort(function,
                 "join handle %p is a copy of a handle that was already dropped (the thread "
                 "was detached)",
                 (const void *)h);
    return t;
}

int ox_thread_join(ox_join_handle *h, void **result, ox_panic_payload **payload)
{
    ox_thread *t = live_handle(h, "ox_thread_join");
    if (t == current)
        return OX_EDEADLK;
    ox_panic_payload *p = NULL;
    int rc = ox__thread_collect(t, result, &p);
    atomic_store_explicit(&t->handle_spent, OX__HANDLE_JOINED, memory_order_relaxed);
    h->thread = NULL;
    ox_thread_drop(t);
    ox__panic_payload_hand(p, payload); /* last: its drop may panic */
    return rc;
}

void ox_join_handle_drop(ox_join_handle *h)
{
    ox_thread *t = live_handle(h, "ox_join_handle_drop");
    ox__sys_thread_detach(t->os);
    atomic_store_explicit(&t->handle_spent, OX__HANDLE_DROPPED, memory_order_relaxed);
    h->thread = NULL;
    ox__thread_release_outcome(t, "ox_join_handle_drop");
    ox_thread_drop(t);
}

bool ox_join_handle_is_finished(const ox_join_handle *h)
{
    ox_thread *t = live_handle(h, "ox_join_handle_is_finished");
    return atomic_load_explicit(&t->finished, memory_order_acquire) != 0;
}

ox_thread *ox_join_handle_thread(const ox_join_handle *h)
{
    return live_handle(h, "ox_join_handle_thread");
}

/* ---- parking, sleeping ---- */

void ox_thread_park(void)
{
    ox__parker_park(&ox_thread_current()->parker, OX_INSTANT_NEVER, &park_site, NULL);
}

int ox_thread_park_timeout(ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return ox__parker_park(&ox_thread_current()->parker, ox_instant_after(timeout), &park_site,
                           NULL);
}

void ox_thread_unpark(ox_thread *t)
{
    if (t == NULL)
        ox_abort("ox_thread_unpark", "NULL thread");
    ox__parker_unpark(&t->parker);
}

void ox_thread_sleep(ox_nanos duration)
{
    if (duration > 0)
        ox__sys_sleep_until(ox_instant_after(duration).ns);
}

void ox_thread_sleep_until(ox_instant deadline)
{
    ox__sys_sleep_until(deadline.ns);
}

void ox_thread_yield(void)
{
    ox__sys_yield();
}

size_t ox_available_parallelism(void)
{
    return ox__sys_available_parallelism();
}
