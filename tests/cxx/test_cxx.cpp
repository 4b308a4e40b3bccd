/* oxide used from C++: tests/cxx/run.sh builds this with g++ and clang++,
 * -std=c++17 and -std=c++20, links it with the C library and runs it.
 *
 * It checks that <oxide.h> compiles as C++ (warnings are errors), that the
 * static initialisers are constant initialisers (constinit in C++20), that
 * the structs have the C layout (layout.h), and that the API works through
 * the out-of-line functions C++ calls: threads, locks, condvar, Once, Arc,
 * thread-locals, barrier, scoped threads, a channel with select, and a panic
 * caught at a boundary (ox_catch_unwind) and at a thread's entry.
 * Every failed check prints its line and exits 1. */
#include <oxide.h>

#include "layout.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

/* C++20 proves at compile time that the initialisers are constant. */
#if __cplusplus >= 202002L
#define CONSTINIT constinit
#else
#define CONSTINIT
#endif

static void *make_answer(void *arg)
{
    return arg;
}

static CONSTINIT ox_mutex counter_lock = OX_MUTEX_INIT;
static CONSTINIT ox_rwlock table_lock = OX_RWLOCK_INIT;
static CONSTINIT ox_condvar ready_cv = OX_CONDVAR_INIT;
static CONSTINIT ox_once once = OX_ONCE_INIT;
static CONSTINIT ox_once_lock cell = OX_ONCE_LOCK_INIT;
static int answer = 42;
static CONSTINIT ox_lazy_lock lazy = OX_LAZY_LOCK_INIT(make_answer, &answer);
static CONSTINIT ox_barrier barrier = OX_BARRIER_INIT(4);
static CONSTINIT ox_semaphore slots = OX_SEMAPHORE_INIT(2);
static CONSTINIT ox_notify bell = OX_NOTIFY_INIT;

enum { THREADS = 4, ROUNDS = 20000 };

static void check_layout()
{
    std::vector<size_t> cxx;
#define SIZE_ALIGN(type)                                                                           \
    cxx.push_back(sizeof(type));                                                                   \
    cxx.push_back(alignof(type));
#define OFFSET(type, field) cxx.push_back(offsetof(type, field));
    OX_TEST_LAYOUT(SIZE_ALIGN, OFFSET)
    for (size_t i = 0; i < cxx.size(); i++) {
        if (ox_test_c_layout[i] != cxx[i])
            std::fprintf(stderr, "layout entry %zu: C says %zu, C++ says %zu\n", i,
                         ox_test_c_layout[i], cxx[i]);
        CHECK(ox_test_c_layout[i] == cxx[i]);
    }
    CHECK(ox_test_c_layout[cxx.size()] == 0);
}

/* Threads and a mutex: no increment is lost. The guard form too. */
static long counter;

static void check_threads_and_mutex()
{
    ox_join_handle handles[THREADS];
    for (auto &h : handles)
        h = ox_thread_spawn(
            [](void *) -> void * {
                for (int i = 0; i < ROUNDS; i++) {
                    if (i % 2 == 0) {
                        CHECK(ox_mutex_lock(&counter_lock) == 0);
                        counter++;
                        ox_mutex_unlock(&counter_lock);
                    } else {
                        OX_MUTEX_SCOPE(&counter_lock)
                        {
                            counter++;
                        }
                    }
                }
                return nullptr;
            },
            nullptr);
    for (auto &h : handles)
        CHECK(ox_thread_join(&h, nullptr, nullptr) == 0);
    CHECK(counter == long(THREADS) * ROUNDS);
    CHECK(ox_mutex_try_lock(&counter_lock) == 0);
    CHECK(ox_mutex_try_lock_at(&counter_lock, __FILE__, __LINE__) == OX_EBUSY);
    ox_mutex_unlock(&counter_lock);
}

/* The builder, names and a result handed back by join. */
static void check_builder()
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "cxx-worker");
    ox_join_handle h = OX_JOIN_HANDLE_NONE;
    CHECK(ox_thread_builder_spawn(
              &b,
              [](void *arg) -> void * {
                  CHECK(std::strcmp(ox_thread_name(ox_thread_current()), "cxx-worker") == 0);
                  return (void *)((intptr_t)arg * 2);
              },
              (void *)21, &h) == 0);
    void *result = nullptr;
    CHECK(ox_thread_join(&h, &result, nullptr) == 0);
    CHECK((intptr_t)result == 42);
}

/* Readers never see a half-written pair. */
static long pair[2];

static void check_rwlock()
{
    ox_join_handle writer = ox_thread_spawn(
        [](void *) -> void * {
            for (long i = 1; i <= ROUNDS; i++) {
                CHECK(ox_rwlock_write(&table_lock) == 0);
                pair[0] = i;
                pair[1] = -i;
                ox_rwlock_write_unlock(&table_lock);
            }
            return nullptr;
        },
        nullptr);
    for (int i = 0; i < ROUNDS; i++) {
        CHECK(ox_rwlock_read(&table_lock) == 0);
        CHECK(pair[0] == -pair[1]);
        ox_rwlock_read_unlock(&table_lock);
    }
    CHECK(ox_thread_join(&writer, nullptr, nullptr) == 0);
    CHECK(pair[0] == ROUNDS);
}

/* A condvar hand-off: the waiter sees the flag the notifier set. */
static bool ready;

static void check_condvar()
{
    ox_join_handle h = ox_thread_spawn(
        [](void *) -> void * {
            CHECK(ox_mutex_lock(&counter_lock) == 0);
            ready = true;
            ox_mutex_unlock(&counter_lock);
            ox_condvar_notify_all(&ready_cv);
            return nullptr;
        },
        nullptr);
    CHECK(ox_mutex_lock(&counter_lock) == 0);
    CHECK(ox_condvar_wait_while(
              &ready_cv, &counter_lock, [](void *) { return !ready; }, nullptr) == 0);
    CHECK(ready);
    ox_mutex_unlock(&counter_lock);
    CHECK(ox_thread_join(&h, nullptr, nullptr) == 0);
}

/* Once runs its function once across threads; OnceLock and LazyLock give
 * every thread the one value. The barrier elects one leader per round. */
static int once_runs;
static int leaders;

static void check_once_and_barrier()
{
    ox_join_handle handles[THREADS];
    for (auto &h : handles)
        h = ox_thread_spawn(
            [](void *) -> void * {
                for (int round = 0; round < 100; round++) {
                    ox_once_call(
                        &once, [](void *) { once_runs++; }, nullptr);
                    CHECK(ox_once_is_completed(&once));
                    CHECK(ox_once_lock_get_or_init(&cell, make_answer, (void *)7) == (void *)7);
                    CHECK(ox_lazy_lock_get(&lazy) == &answer);
                    if (ox_barrier_wait(&barrier)) {
                        CHECK(ox_mutex_lock(&counter_lock) == 0);
                        leaders++;
                        ox_mutex_unlock(&counter_lock);
                    }
                }
                return nullptr;
            },
            nullptr);
    for (auto &h : handles)
        CHECK(ox_thread_join(&h, nullptr, nullptr) == 0);
    CHECK(once_runs == 1);
    CHECK(ox_once_lock_get(&cell) == (void *)7);
    CHECK(leaders == 100);
}

/* Arc: clones across threads, drop_fn exactly once, after the last drop. */
static int arc_drops;

static void check_arc()
{
    long *value = static_cast<long *>(ox_arc_new(sizeof(long), [](void *) { arc_drops++; }));
    *value = 5;
    ox_join_handle handles[THREADS];
    for (auto &h : handles)
        h = ox_thread_spawn(
            [](void *arg) -> void * {
                CHECK(*static_cast<long *>(arg) == 5);
                ox_arc_drop(arg);
                return nullptr;
            },
            ox_arc_clone(value));
    for (auto &h : handles)
        CHECK(ox_thread_join(&h, nullptr, nullptr) == 0);
    CHECK(ox_arc_strong_count(value) == 1);
    CHECK(arc_drops == 0);
    ox_arc_drop(value);
    CHECK(arc_drops == 1);
}

/* A thread-local: initialised on first use in each thread, destroyed at
 * that thread's exit. */
static int tls_destroyed;
static void tls_init(int *v)
{
    *v = 100;
}
static void tls_destroy(int *)
{
    CHECK(ox_mutex_lock(&counter_lock) == 0);
    tls_destroyed++;
    ox_mutex_unlock(&counter_lock);
}
OX_THREAD_LOCAL(per_thread, int, tls_init, tls_destroy);

static void check_thread_local()
{
    ox_join_handle handles[THREADS];
    for (auto &h : handles)
        h = ox_thread_spawn(
            [](void *) -> void * {
                int *v = OX_TLS_GET(per_thread);
                CHECK(*v == 100);
                ++*v;
                CHECK(*OX_TLS_GET(per_thread) == 101);
                return nullptr;
            },
            nullptr);
    for (auto &h : handles)
        CHECK(ox_thread_join(&h, nullptr, nullptr) == 0);
    CHECK(tls_destroyed == THREADS);
}

/* A channel: three senders, one receiver, every message once and in order
 * per sender; the receiver sees the disconnection after the last drop.
 * Then select over two channels. Scoped threads borrow the stack. */
enum { MESSAGES = 5000, SENDERS = 3 };

struct send_job {
    ox_sender *tx;
    int id;
};

static void check_channel()
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK(ox_channel(sizeof(int), 16, &tx, &rx) == 0);
    struct body_args {
        ox_sender *tx;
        ox_receiver *rx;
    } args = {tx, rx};
    ox_thread_scope(
        [](ox_scope *scope, void *arg) {
            auto *a = static_cast<body_args *>(arg);
            send_job jobs[SENDERS];
            for (int s = 0; s < SENDERS; s++) {
                jobs[s] = {s == 0 ? a->tx : ox_sender_clone(a->tx), s};
                ox_scope_spawn(
                    scope,
                    [](void *job_arg) -> void * {
                        auto *job = static_cast<send_job *>(job_arg);
                        for (int i = 0; i < MESSAGES; i++) {
                            int v = job->id * MESSAGES + i;
                            CHECK(ox_sender_send(job->tx, &v) == 0);
                        }
                        ox_sender_drop(job->tx);
                        return nullptr;
                    },
                    &jobs[s]);
            }
            int next[SENDERS] = {0, 0, 0};
            int v, received = 0;
            OX_CHANNEL_FOR_EACH(a->rx, &v)
            {
                int s = v / MESSAGES;
                CHECK(s >= 0 && s < SENDERS && v % MESSAGES == next[s]);
                next[s]++;
                received++;
            }
            CHECK(received == SENDERS * MESSAGES);
            CHECK(ox_receiver_recv(a->rx, &v) == OX_EDISCONNECTED);
        },
        &args);
    ox_receiver_drop(rx);

    ox_sender *tx1, *tx2;
    ox_receiver *rx1, *rx2;
    CHECK(ox_channel(sizeof(int), OX_UNBOUNDED, &tx1, &rx1) == 0);
    CHECK(ox_channel(sizeof(int), OX_UNBOUNDED, &tx2, &rx2) == 0);
    int seven = 7, got = 0;
    CHECK(ox_sender_send(tx2, &seven) == 0);
    ox_select_op ops[] = {OX_SELECT_NEVER, OX_SELECT_RECV(rx1, &got), OX_SELECT_RECV(rx2, &got)};
    size_t index = 99;
    CHECK(ox_select_timeout(ops, 3, OX_SECS(10), &index) == 0);
    CHECK(index == 2 && got == 7);
    CHECK(ox_select_try(ops, 1, &index) == OX_EBUSY); /* only the disabled case */
    ox_sender_drop(tx1);
    ox_sender_drop(tx2);
    ox_receiver_drop(rx1);
    ox_receiver_drop(rx2);
}

/* A panic caught at the boundary: the frames it crosses are C-like (no
 * destructors to skip). It poisons the mutex it unwound through; a thread's
 * panic comes back from join. */
static int hook_calls;

static void check_panic()
{
    ox_panic_hook old = ox_panic_set_hook([](const ox_panic_payload *) { hook_calls++; });
    ox_panic_payload *payload = nullptr;
    void *result = nullptr;
    int rc = ox_catch_unwind(
        [](void *) -> void * {
            CHECK(ox_mutex_lock(&counter_lock) == 0);
            ox_panic("boom %d", 1);
        },
        nullptr, &result, &payload);
    CHECK(rc == OX_EPANICKED);
    CHECK(payload != nullptr && std::strcmp(payload->message, "boom 1") == 0);
    ox_panic_payload_free(payload);
    CHECK(ox_mutex_is_poisoned(&counter_lock));
    CHECK(ox_mutex_lock(&counter_lock) == OX_EPOISONED);
    ox_mutex_clear_poison(&counter_lock);
    ox_mutex_unlock(&counter_lock);

    ox_join_handle h = ox_thread_spawn([](void *) -> void * { ox_panic("in a thread"); }, nullptr);
    CHECK(ox_thread_join(&h, nullptr, &payload) == OX_EPANICKED);
    CHECK(std::strcmp(payload->message, "in a thread") == 0);
    ox_panic_payload_free(payload);
    CHECK(hook_calls == 2);
    ox_panic_set_hook(old);
}

/* Tokio's set from C++: a semaphore's permits, a stored Notify permit, a
 * broadcast seen by two receivers. */
static void check_tokio_set()
{
    CHECK(ox_semaphore_acquire(&slots, 2) == 0);
    CHECK(ox_semaphore_try_acquire(&slots, 1) == OX_EBUSY);
    ox_semaphore_release(&slots, 2);
    CHECK(ox_semaphore_available(&slots) == 2);
    ox_notify_one(&bell);
    CHECK(ox_notify_wait(&bell) == 0);
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *a;
    CHECK(ox_broadcast(sizeof(int), 4, &tx, &a) == 0);
    ox_broadcast_receiver *b = ox_broadcast_subscribe(tx);
    int v = 5, got = 0;
    CHECK(ox_broadcast_send(tx, &v) == 0);
    CHECK(ox_broadcast_recv(a, &got, nullptr) == 0 && got == 5);
    CHECK(ox_broadcast_recv(b, &got, nullptr) == 0 && got == 5);
    ox_broadcast_sender_drop(tx);
    ox_broadcast_receiver_drop(a);
    ox_broadcast_receiver_drop(b);
}

int main()
{
    check_layout();
    check_threads_and_mutex();
    check_builder();
    check_rwlock();
    check_condvar();
    check_once_and_barrier();
    check_arc();
    check_thread_local();
    check_channel();
    check_panic();
    check_tokio_set();
    CHECK(ox_instant_diff(OX_INSTANT_NEVER, ox_instant_now()) > 0);
    CHECK(std::strcmp(ox_strerror(OX_EPOISONED), ox_strerror(OX_EBUSY)) != 0);
    CHECK(ox_version() == OX_VERSION_HEX);
    CHECK(std::strcmp(ox_version_string(), OX_VERSION_STRING) == 0);
    std::printf("oxide from C++ %ld: all checks passed\n", (long)__cplusplus);
    return 0;
}
