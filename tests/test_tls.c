/* Thread-locals: lazy init per thread, destructors in reverse order at
 * thread exit (also for threads oxide did not start, and for the main thread
 * at exit), access after destruction reported, current() in destructors. */
#define _GNU_SOURCE /* syscall() */
#include "oxide.h"
#include "runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int inits, destroys;
static char order[32];
static _Atomic size_t order_len;

static void note(char c)
{
    size_t i = atomic_fetch_add(&order_len, 1);
    if (i < sizeof order - 1)
        order[i] = c;
}

static void counter_init(int *v)
{
    *v = 100;
    atomic_fetch_add(&inits, 1);
}
static void counter_destroy(int *v)
{
    (void)v;
    atomic_fetch_add(&destroys, 1);
}
OX_THREAD_LOCAL(counter, int, counter_init, counter_destroy);

static void first_init(char *c)
{
    *c = 'F';
}
static void second_init(char *c)
{
    *c = 'S';
}
static void note_destroy(char *c)
{
    note(*c);
}
OX_THREAD_LOCAL(first, char, first_init, note_destroy);
OX_THREAD_LOCAL(second, char, second_init, note_destroy);

static void *bump_counter(void *arg)
{
    int *c = OX_TLS_GET(counter);
    CHECK_EQ(*c, 100); /* a fresh instance in this thread */
    *c += (int)(intptr_t)arg;
    CHECK_EQ(*OX_TLS_GET(counter), 100 + (int)(intptr_t)arg);
    return NULL;
}

OX_TEST(tls_lazy_per_thread_instances)
{
    CHECK_EQ(atomic_load(&inits), 0); /* nothing until first use */
    *OX_TLS_GET(counter) = 1;
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(bump_counter, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(*OX_TLS_GET(counter), 1); /* untouched by the others */
    CHECK_EQ(atomic_load(&inits), 5);
    CHECK_EQ(atomic_load(&destroys), 4); /* each spawned thread's, at its exit */
}

static void *init_second_then_first(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(second);
    (void)OX_TLS_GET(first);
    return NULL;
}

OX_TEST(tls_destructors_run_in_reverse_order_of_init)
{
    ox_join_handle h = ox_thread_spawn(init_second_then_first, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    order[order_len] = '\0';
    CHECK_STR(order, "FS");
}

static void *panic_after_tls(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(counter);
    ox_panic("panicking with a live thread-local");
}

OX_TEST(tls_destructors_run_when_thread_panics)
{
    ox_join_handle h = ox_thread_spawn(panic_after_tls, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(atomic_load(&destroys), 1);
}

static void *foreign_thread_body(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(second);
    (void)OX_TLS_GET(first);
    return NULL;
}

OX_TEST(tls_destructors_run_in_threads_oxide_did_not_start)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_thread_body, NULL), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    order[order_len] = '\0';
    CHECK_STR(order, "FS");
}

/* Destruction-time access: a destructor that reads another, already
 * destroyed thread-local gets OX_EDESTROYED, and one that touches a fresh
 * thread-local initialises it (which is then destroyed in turn). */
static _Atomic int late_result = -1;
static void probe_destroy(int *v);
OX_THREAD_LOCAL(probe, int, NULL, probe_destroy);
static void late_destroy(int *v)
{
    (void)v;
    note('L');
}
OX_THREAD_LOCAL(late, int, NULL, late_destroy);

static void probe_destroy(int *v)
{
    (void)v;
    char *dead;
    atomic_store(&late_result, OX_TLS_TRY_GET(first, &dead)); /* destroyed before us */
    int *self;
    CHECK_EQ(OX_TLS_TRY_GET(probe, &self), OX_EDESTROYED); /* being destroyed */
    CHECK(self == NULL);
    *OX_TLS_GET(late) = 1; /* first touched now: initialised, then destroyed */
    note('P');
}

static void *probe_body(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(probe);
    (void)OX_TLS_GET(first); /* newer: destroyed first */
    return NULL;
}

OX_TEST(tls_access_during_destruction_is_reported_not_ub)
{
    ox_join_handle h = ox_thread_spawn(probe_body, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&late_result), OX_EDESTROYED);
    order[order_len] = '\0';
    CHECK_STR(order, "FPL");
}

static void use_after_destroy(int *v)
{
    (void)v;
    (void)OX_TLS_GET(counter); /* destroyed already: abort with a message */
}
OX_THREAD_LOCAL(bad, int, NULL, use_after_destroy);

static void *bad_body(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(bad);
    (void)OX_TLS_GET(counter);
    return NULL;
}

OX_TEST_OPTS(tls_get_after_destruction_aborts_with_name, .expect_signal = SIGABRT,
             .expect_stderr = "thread-local 'counter' accessed during or after its destruction")
{
    ox_join_handle h = ox_thread_spawn(bad_body, NULL);
    (void)!ox_thread_join(&h, NULL, NULL);
}

/* rust-lang/rust#116933: the current thread inside a destructor. */
static char name_in_destructor[64];
static uint64_t id_in_destructor;
static void who_am_i(int *v)
{
    (void)v;
    ox_thread *me = ox_thread_current();
    snprintf(name_in_destructor, sizeof name_in_destructor, "%s",
             ox_thread_name(me) ? ox_thread_name(me) : "(none)");
    id_in_destructor = ox_thread_id(me);
}
OX_THREAD_LOCAL(whoami, int, NULL, who_am_i);

static void *whoami_body(void *arg)
{
    *(uint64_t *)arg = ox_thread_id(ox_thread_current());
    (void)OX_TLS_GET(whoami);
    return NULL;
}

OX_TEST(tls_current_thread_inside_destructor)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "tls-owner");
    ox_join_handle h;
    uint64_t id = 0;
    CHECK_EQ(ox_thread_builder_spawn(&b, whoami_body, &id, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_STR(name_in_destructor, "tls-owner");
    CHECK_EQ(id_in_destructor, id);

    /* In a thread oxide did not start, current() may first be called from
     * the destructor itself: it still works and is released after. */
    name_in_destructor[0] = '\0';
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, (void *(*)(void *))whoami_body, &id), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_STR(name_in_destructor, "(none)");
    CHECK_EQ(id_in_destructor, id);
}

/* The main thread's destructors run at exit(): the runner checks stdout. */
static void say_goodbye(int *v)
{
    const char *name = ox_thread_name(ox_thread_current());
    printf("main destructor ran (value %d, thread '%s')\n", *v, name ? name : "<unnamed>");
}
OX_THREAD_LOCAL(main_only, int, NULL, say_goodbye);

OX_TEST(tls_main_thread_destructors_run_at_exit)
{
    char *argv[] = {"/proc/self/exe", "--one", "tls_main_thread_helper", NULL};
    char *out, *err;
    int status = ox_test_run_program(argv, 10, &out, &err);
    CHECK(status == 0);
    CHECK(strstr(out, "main destructor ran (value 42, thread 'main')") != NULL);
    free(out);
    free(err);
}

OX_TEST(tls_main_thread_helper)
{
    *OX_TLS_GET(main_only) = 42;
}

static void recursive_init(int *v);
OX_THREAD_LOCAL(selfref, int, recursive_init, NULL);
static void recursive_init(int *v)
{
    *v = *OX_TLS_GET(selfref);
}

OX_TEST_OPTS(tls_recursive_init_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "accessed by its own initialiser")
{
    (void)OX_TLS_GET(selfref);
}

/* exit() from a thread oxide started: that thread's destructors run, the
 * main thread's (still in use) do not. */
static void *set_and_exit(void *arg)
{
    (void)arg;
    *OX_TLS_GET(main_only) = 7;
    fflush(stdout);
    exit(0);
}

OX_TEST(tls_exit_from_spawned_thread_helper)
{
    *OX_TLS_GET(main_only) = 42; /* main's: must not be destroyed */
    ox_join_handle h = ox_thread_spawn(set_and_exit, NULL);
    (void)!ox_thread_join(&h, NULL, NULL);
}

OX_TEST(tls_exit_from_spawned_thread_runs_its_destructors)
{
    char *argv[] = {"/proc/self/exe", "--one", "tls_exit_from_spawned_thread_helper", NULL};
    char *out, *err;
    int status = ox_test_run_program(argv, 10, &out, &err);
    CHECK(status == 0);
    CHECK(strstr(out, "main destructor ran (value 7, thread '<unnamed>')") != NULL);
    CHECK(strstr(out, "value 42") == NULL);
    free(out);
    free(err);
}

/* Issue 17 #3: a pthread key destructor that runs after oxide's exit hook
 * (a key created later: glibc runs them in key order, in rounds) and
 * touches a fresh thread-local, or ox_thread_current(), must be cleaned up
 * in a later round: the thread-local's destructor runs and the thread
 * record is freed (LeakSanitizer checks that in the asan suite). */
static _Atomic int late_inits, late_destroys;
static void late_local_init(int *v)
{
    *v = 1;
    atomic_fetch_add(&late_inits, 1);
}
static void late_local_destroy(int *v)
{
    CHECK_EQ(*v, 1);
    atomic_fetch_add(&late_destroys, 1);
}
OX_THREAD_LOCAL(late_local, int, late_local_init, late_local_destroy);

static pthread_key_t later_key;

static void later_key_destructor(void *unused)
{
    (void)unused;
    CHECK(OX_TLS_GET(late_local) != NULL);
    CHECK(ox_thread_current() != NULL);
}

static void *touch_then_exit(void *arg)
{
    (void)arg;
    (void)OX_TLS_GET(first); /* arms oxide's exit hook in a foreign thread */
    CHECK_EQ(pthread_setspecific(later_key, (void *)1), 0);
    return NULL;
}

OX_TEST(tls_touched_by_a_later_key_destructor_is_destroyed)
{
    /* oxide's key first, so ours has the higher index and runs after it. */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_thread_body, NULL), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(pthread_key_create(&later_key, later_key_destructor), 0);

    enum { FOREIGN = 100, SPAWNED = 20 };
    for (int i = 0; i < FOREIGN; i++) {
        CHECK_EQ(pthread_create(&t, NULL, touch_then_exit, NULL), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
    }
    for (int i = 0; i < SPAWNED; i++) {
        ox_join_handle h = ox_thread_spawn(touch_then_exit, NULL);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    }
    CHECK_EQ(atomic_load(&late_inits), FOREIGN + SPAWNED);
    CHECK_EQ(atomic_load(&late_destroys), FOREIGN + SPAWNED);
}

/* ---- an initialiser that panics (issue 10, bug 2) ---- */

static int flaky_runs, flaky_destroyed, flaky_saw_nonzero;

static void flaky_init(int *v)
{
    if (*v != 0)
        flaky_saw_nonzero++; /* a retry must start from a zeroed value */
    *v = 99;                 /* half-done work, then the panic */
    if (++flaky_runs == 1)
        ox_panic("first init fails");
    *v = 7;
}

static void flaky_destroy(int *v)
{
    CHECK_EQ(*v, 7);
    flaky_destroyed++;
}

OX_THREAD_LOCAL(flaky, int, flaky_init, flaky_destroy);

static void *get_flaky(void *arg)
{
    (void)arg;
    return OX_TLS_GET(flaky);
}

static void *flaky_twice(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_catch_unwind(get_flaky, NULL, NULL, NULL), OX_EPANICKED);
    /* As Rust: the slot stays uninitialised, and this access runs the
     * initialiser again (before the fix it aborted: "accessed by its own
     * initialiser"). */
    int *v = OX_TLS_GET(flaky);
    CHECK_EQ(*v, 7);
    CHECK_EQ(flaky_runs, 2);
    CHECK(OX_TLS_GET(flaky) == v); /* initialised once now */
    CHECK_EQ(flaky_runs, 2);
    return NULL;
}

OX_TEST(tls_init_that_panics_runs_again_on_next_access)
{
    ox_join_handle h = ox_thread_spawn(flaky_twice, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(flaky_runs, 2);
    CHECK_EQ(flaky_saw_nonzero, 0);
    CHECK_EQ(flaky_destroyed, 1); /* registered once, destroyed once */
}

/* A destructor that panics: as Rust, the process aborts with a message
 * naming the thread-local (the panic may not escape into thread exit). */
static void panicking_destroy(int *v)
{
    (void)v;
    ox_panic("destructor fails");
}

OX_THREAD_LOCAL(tls_panicky_dtor, int, NULL, panicking_destroy);

static void *touch_panicky_dtor(void *arg)
{
    (void)arg;
    *OX_TLS_GET(tls_panicky_dtor) = 1;
    return NULL;
}

OX_TEST_OPTS(tls_destructor_that_panics_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the destructor of thread-local 'tls_panicky_dtor' panicked")
{
    ox_join_handle h = ox_thread_spawn(touch_panicky_dtor, NULL);
    (void)!ox_thread_join(&h, NULL, NULL);
}

/* ---- the last reference to a thread's record, dropped at its end ----
 * A thread whose handle was dropped (detached) and which panicked with a
 * typed payload frees that payload itself, with its record, as the last
 * part of its end (src/unit/unit.h). The payload's drop is the user's
 * code and may touch a thread-local, or ask for the current thread, at a
 * moment when the thread's own release has already run: as for another
 * library's key destructor, that must arm the exit key anew, or the
 * thread-local is never destroyed (and the fresh thread record leaks). */
static _Atomic int payload_tls_destroys, payload_dropped;
static _Atomic int payload_drop_tid;

static void payload_local_init(int *v)
{
    *v = 1;
}
static void payload_local_destroy(int *v)
{
    CHECK_EQ(*v, 1);
    atomic_fetch_add(&payload_tls_destroys, 1);
}
OX_THREAD_LOCAL(payload_local, int, payload_local_init, payload_local_destroy);

struct tls_payload {
    int unused;
};

static void tls_payload_drop(void *value)
{
    free(value);
    atomic_store(&payload_drop_tid, (int)syscall(SYS_gettid));
    CHECK(OX_TLS_GET(payload_local) != NULL);
    CHECK(ox_thread_current() != NULL);
    /* Release: the test reads the tid after seeing the flag. */
    atomic_store_explicit(&payload_dropped, 1, memory_order_release);
}

static ox_notify payload_go = OX_NOTIFY_INIT;

static void *panic_with_tls_payload(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_notify_wait(&payload_go), 0); /* until the handle is dropped */
    struct tls_payload *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    ox_panic_any(struct tls_payload, p, tls_payload_drop);
}

OX_TEST(tls_touched_by_a_detached_threads_payload_drop_is_destroyed)
{
    enum { ROUNDS = 20 };
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store(&payload_dropped, 0);
        ox_join_handle h = ox_thread_spawn(panic_with_tls_payload, NULL);
        ox_join_handle_drop(&h); /* the thread's own reference is the last */
        ox_notify_one(&payload_go);
        while (!atomic_load_explicit(&payload_dropped, memory_order_acquire))
            ox_thread_sleep(OX_MILLIS(1));
        /* Every key destructor of a thread has run once the kernel has
         * removed it from the process. */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d", atomic_load(&payload_drop_tid));
        while (access(path, F_OK) == 0)
            ox_thread_sleep(OX_MILLIS(1));
        CHECK_EQ(atomic_load(&payload_tls_destroys), i + 1);
    }
}
