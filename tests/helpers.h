/* helpers.h - test helpers that use oxide itself (runner.h stays free of
 * it): capturing this process's stderr, and spawning named threads. */
#ifndef OX_TEST_HELPERS_H
#define OX_TEST_HELPERS_H

#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Sends this process's stderr to a temporary file; ox_test_stderr_text()
 * returns what was written since (malloc'd) and restores stderr, so that
 * the test's own failure messages reach the runner. */
void ox_test_capture_stderr(void);
char *ox_test_stderr_text(void);

/* Forks; the child sends its stderr to a pipe and runs child(arg), which
 * must end the child (_exit, abort; one that returns exits with status 4).
 * The parent reads the child's stderr to EOF into err (size bytes,
 * NUL-terminated; when full it drops the older half, so the end is kept),
 * waits for the child and returns its wait status. */
int ox_test_fork_stderr(void (*child)(void *arg), void *arg, char *err, size_t size);

/* Sets an Arc's strong count to n references through the internal hook
 * that oxide/arc.h documents (the count is stored minus one). */
void ox_test_arc_set_strong(void *payload, size_t n);

#define CHECK_CONTAINS(text, needle)                                                               \
    do {                                                                                           \
        if (strstr((text), (needle)) == NULL)                                                      \
            ox_test_fail(__FILE__, __LINE__, "missing \"%s\" in:\n%s", (needle), (text));          \
    } while (0)

/* Spawns fn(arg) in a thread called name; joins one and checks it
 * returned normally. */
ox_join_handle ox_test_spawn_named(const char *name, void *(*fn)(void *), void *arg);
void ox_test_join(ox_join_handle *h);
/* A TCP listener on text's address (port 0: any free one); its address,
 * with the port it got, in *addr. */
ox_socket *ox_test_listen(const char *text, ox_sockaddr *addr);
/* Both: runs fn(arg) in a thread called name, to its end. */
void ox_test_run_named(const char *name, void *(*fn)(void *), void *arg);

/* A runtime of the test's own with that many workers (the test shuts it
 * down), and fn(arg) spawned as a task on it; both check they succeeded. */
/* The entries in the calling thread's (or task's) unwind record: held
 * locks, cleanups, and a panic's barrier while it unwinds. */
uint32_t ox_test_held_depth(void);
/* After a panic has landed: nothing is left in the record, and the thread
 * is no longer panicking. */
#define CHECK_UNWOUND()                                                                            \
    do {                                                                                           \
        CHECK_EQ(ox_test_held_depth(), 0u);                                                        \
        CHECK(!ox_thread_panicking());                                                             \
    } while (0)

ox_runtime *ox_test_runtime(size_t workers);
ox_task_handle ox_test_spawn_on(ox_runtime *rt, void *(*fn)(void *), void *arg);
/* Once every task of rt is done: waits (up to a generous bound) until every
 * worker is idle and none is still counted as a searcher, else fails. A
 * searcher that leaked would make every later wake of an idle worker a
 * no-op (runtime.c); the last worker may still be in its 50 us search. */
void ox_test_check_all_idle_no_searcher(ox_runtime *rt);
/* The next value of a xorshift32 sequence (*x: not 0): cheap randomness for
 * round counts and delays, the same in every run. */
uint32_t ox_test_rand(uint32_t *x);
/* Spins about ns nanoseconds without yielding: a delay that does not give
 * the other workers a chance they would not otherwise have. */
void ox_test_spin_ns(int64_t ns);
/* The lowest-numbered CPU this thread may run on. */
int ox_test_first_allowed_cpu(void);
/* Another CPU this thread may run on than cpu; cpu itself if there is
 * none. */
int ox_test_other_allowed_cpu(int cpu);

/* Ends l's bias to its readers (a write lock and unlock), if it has one:
 * for tests of the counted and dispersed modes. */
void ox_test_rwlock_end_bias(ox_rwlock *l);
/* Two overlapping read locks, released, after ending a bias: from then on
 * l's readers take slots (src/sync/rwlock.c, "Dispersed readers"). Checks
 * that they do. */
void ox_test_rwlock_disperse(ox_rwlock *l);
/* Readers holding l through its count (not its slots). */
uint32_t ox_test_rwlock_count(ox_rwlock *l);
/* Whether a copy that routes l's inline read away from the count is set
 * (of DISPERSED or BIASED); and setting or clearing the copy of DISPERSED
 * by hand, as when it lags the bit. */
bool ox_test_rwlock_copy(ox_rwlock *l);
void ox_test_rwlock_force_copy(ox_rwlock *l, bool set);
/* Installs a seccomp filter that makes membarrier fail with EPERM in the
 * calling process (a forked child: it cannot be undone), as a sandbox
 * installed after oxide's start-up would. False if seccomp is unavailable. */
bool ox_test_deny_membarrier(void);
/* Pins thread or process who (0: the calling thread) to that one CPU. */
void ox_test_pin(pid_t who, int cpu);

/* The other side of a ping-pong: a thread body (arg: ox_test_answerer *)
 * that pins itself to cpu, answers each question on rx with its successor
 * on tx until either channel is disconnected, then drops both. Messages
 * are a uint64_t, padded to the channel's size (at most 32 bytes), or
 * none for zero-size channels. */
typedef struct ox_test_answerer {
    int cpu;
    ox_sender *tx;              /* answers */
    ox_receiver *rx;            /* questions */
    _Atomic int yields_skipped; /* its waits skipped their yields once (park.h) */
} ox_test_answerer;
void *ox_test_answer(void *answerer);
/* A thread that keeps the lock-order checker's lock busy and its pair
 * caches stale (it registers a lock class and sizes the checker's memory,
 * over and over) until stopped: a task whose lock push enters the checker
 * then waits there, and may resume on another worker. The checker must be
 * enabled; the struct stays put from start to stop. */
typedef struct ox_test_stirrer {
    ox_join_handle thread;
    _Atomic int running;
} ox_test_stirrer;
void ox_test_stirrer_start(ox_test_stirrer *s);
void ox_test_stirrer_stop(ox_test_stirrer *s);
/* A panic hook that prints nothing, for tests whose panics are expected
 * (ox_panic_set_hook(ox_test_quiet_hook)). */
void ox_test_quiet_hook(const ox_panic_payload *p);
/* A task or thread body that stores 1 to the _Atomic int at flag. */
void *ox_test_set_flag(void *flag);
/* A task body that sleeps 1 ms, then stores 1 to the _Atomic int at flag. */
void *ox_test_sleep_1ms_then_set_flag(void *flag);
/* Recurses with a 1 KiB frame a frame per call (arg: the depth so far)
 * until the stack overflows: a task's guard page or red zone must end it. */
void *ox_test_recurse(void *arg);
/* Runs fn(arg) as a task on a fresh runtime of `workers` workers, checks
 * that it returned normally, shuts the runtime down; returns fn's result. */
void *ox_test_run_alone(size_t workers, void *(*fn)(void *), void *arg);
/* The same for a task named name (for the blocked dump and the checker's
 * reports). */
ox_task_handle ox_test_spawn_named_on(ox_runtime *rt, const char *name, void *(*fn)(void *),
                                      void *arg);

/* Runs fn in `tasks` tasks on rt and in `threads` threads at the same time,
 * the i-th task and the i-th thread each given (void *)(intptr_t)i, and
 * checks that every one returned normally. */
void ox_test_run_tasks_and_threads(ox_runtime *rt, int tasks, int threads, void *(*fn)(void *));

/* Aborts the task of h once *arrived is non-zero (the task sets it just
 * before its wait) and 2 ms more have passed, so that it most likely
 * blocked (either way the abort must end it); checks the task had not
 * finished before the abort and returned normally after it. Returns what
 * it returned. */
void *ox_test_abort_at_its_wait(ox_task_handle *h, const _Atomic int *arrived);

/* The handshake for "the other thread has queued": returns once at least n
 * threads are blocked on object (a lock, condvar, Once, barrier or channel
 * end, as the blocked-thread registry names it), or when *give_up (if not
 * NULL) becomes non-zero: that is, without a sleep that load can outlast. A
 * thread that never blocks leaves the test to the runner's timeout unless
 * give_up says so. Returns the count seen. */
int ox_test_wait_blocked(const void *object, int n, const _Atomic int *give_up);

/* The same for one thread blocked on anything (a channel's wait, say, whose
 * object a test cannot name). */
void ox_test_wait_thread_blocked(ox_thread *t, const _Atomic int *give_up);

/* The same for tasks, which the blocked-thread registry does not list:
 * waits until at least count tasks wait at a site of that name ("task
 * sleep", "socket read"...), their wait records linked in the parking lot.
 * A task aborted before it ever runs never runs: a test that wants it
 * aborted inside a wait waits for that first. */
void ox_test_wait_tasks_blocked_at(const char *site, int count);

/* ox_test_wait_blocked(object, count, NULL): waits until at least count
 * threads are queued on object. */
void ox_test_wait_blocked_on(const void *object, int count);
/* The same, for threads blocked at a wait site of that name
 * ("watch changed", "broadcast recv"...), for opaque objects. */
void ox_test_wait_blocked_at(const char *site, int count);

/* What ox_dump_blocked_threads prints now (malloc'd); *count the threads
 * it listed. */
char *ox_test_dump_blocked(int *count);

/* Waits until the blocked-thread dump lists at least n threads, failing
 * the test after ox_test_bound(10 s). */
void ox_test_wait_any_blocked(int n);

/* A thread function: parks until *(_Atomic int *)done is non-zero (set it,
 * then unpark the thread). */
void *ox_test_park_until_done(void *done);

/* Four senders racing into one channel of uint64_t: two threads and two
 * tasks on a one-worker runtime, sender i sending i << 32 | k for k = 0,
 * 1, ... in bursts with yields between, on one time budget shared by all
 * (at least min messages each, at most max: ox_test_budget), then dropping
 * its clone of tx (tx itself is dropped at start). ox_test_feed_check
 * checks a received message against next[], each sender's next k;
 * ox_test_feeders_join checks that next[] ends at what each one sent. */
enum { OX_TEST_FEEDERS = 4 };
typedef struct ox_test_feeders {
    struct ox_test_feed {
        ox_sender *tx;
        uint64_t id;
        const ox_test_budget *budget;
        long sent;
    } feed[OX_TEST_FEEDERS];
    ox_test_budget budget;
    ox_runtime *rt;
    ox_task_handle tasks[2];
    ox_join_handle threads[2];
} ox_test_feeders;
void ox_test_feeders_start(ox_test_feeders *f, ox_sender *tx, long min, long max);
void ox_test_feeders_join(ox_test_feeders *f, const long next[OX_TEST_FEEDERS]);
void ox_test_feed_check(long next[OX_TEST_FEEDERS], uint64_t v);

/* Waits (sleeping a task, or a thread) until *count reaches n: for a
 * burst of tasks that must all have started, and so each hold a stack of
 * its own (a task takes its stack when it first runs). */
void ox_test_wait_count(_Atomic long *count, long n);

/* A foreign loop woken by a channel's event fd and draining it with
 * try_recv (tests/test_loop_*.c): a channel of uint64_t (capacity cap)
 * fed by ox_test_feeders (min, max). A buffered channel gets one message
 * before the fd is asked for, and the feeders start only once the loop
 * has drained it: a loop not woken by what was buffered before it asked
 * would sleep for ever (the runner's timeout names the test). That first
 * drain, with no sender yet, also checks that the empty try_recv left the
 * fd unreadable (else the loop would spin). */
typedef struct ox_test_loop_feed {
    ox_receiver *rx;
    ox_sender *tx; /* until the feeders take it */
    int fd;        /* the receiver's event fd: watch it for reading */
    long min, max;
    bool started;
    ox_test_feeders feeders;
    long next[OX_TEST_FEEDERS];
    long wakes;
} ox_test_loop_feed;
void ox_test_loop_feed_start(ox_test_loop_feed *f, size_t cap, long min, long max);
/* The loop's callback for a readable fd: receives everything there is.
 * Returns OX_EDISCONNECTED once every sender is gone (stop watching),
 * else OX_EEMPTY. */
int ox_test_loop_feed_drain(ox_test_loop_feed *f);
/* After the loop: every message arrived, in each sender's order. */
void ox_test_loop_feed_finish(ox_test_loop_feed *f);

/* The other direction: a foreign loop's callbacks feed a task (on a
 * one-worker runtime) and a thread, each receiving longs from an unbounded
 * channel of its own until it is disconnected and checking they come 0, 1,
 * 2, ... (tests/test_loop_*.c). */
typedef struct ox_test_fed_pair {
    ox_sender *to_task, *to_thread;
    long sent, total;
    ox_runtime *rt;
    ox_task_handle task;
    ox_join_handle thread;
} ox_test_fed_pair;
void ox_test_fed_pair_start(ox_test_fed_pair *p, long total);
/* For a loop callback: try_sends the next burst to both (never blocking
 * the loop); once total are sent, drops both senders and returns true. */
bool ox_test_fed_pair_feed(ox_test_fed_pair *p);
/* Joins both receivers, checks each got all total, shuts the runtime down. */
void ox_test_fed_pair_join(ox_test_fed_pair *p);

#endif
