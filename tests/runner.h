/* runner.h - oxide's test runner: every test runs in its own process with
 * a timeout, so a crash or a deadlock fails that test by name.
 *
 *   OX_TEST(mutex_counts) { ... CHECK(x == 4); }
 *   OX_TEST_OPTS(join_twice_aborts, .expect_signal = SIGABRT,
 *                .expect_stderr = "already joined") { ... }
 */
#ifndef OX_TEST_RUNNER_H
#define OX_TEST_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ox_test {
    const char *name;
    void (*fn)(void);
    const char *file;
    int expect_exit;   /* exit status the test must end with (default 0) */
    int expect_signal; /* or: the signal that must end it */
    /* With either set, the body must end the process itself: a body that
     * returns fails (exit status 125, which no test may expect). */
    const char *expect_stderr; /* text its stderr must contain */
    double timeout_s;          /* 0: the default (30 s), times OX_TEST_TIMEOUT_SCALE */
    struct ox_test *next;
} ox_test;

void ox_test_register(ox_test *t);

#define OX_TEST_OPTS(tname, ...)                                                                   \
    static void tname(void);                                                                       \
    static ox_test tname##__ox_test = {                                                            \
        .name = #tname, .fn = tname, .file = __FILE__, __VA_ARGS__};                               \
    __attribute__((constructor)) static void tname##__ox_register(void)                            \
    {                                                                                              \
        ox_test_register(&tname##__ox_test);                                                       \
    }                                                                                              \
    static void tname(void)

#define OX_TEST(tname) OX_TEST_OPTS(tname, .expect_exit = 0)

_Noreturn void ox_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ox_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                  \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long ox_a_ = (long long)(a), ox_b_ = (long long)(b);                                  \
        if (ox_a_ != ox_b_)                                                                        \
            ox_test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, ox_a_,      \
                         ox_b_);                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *ox_a_ = (a), *ox_b_ = (b);                                                     \
        if (ox_a_ == NULL || ox_b_ == NULL || strcmp(ox_a_, ox_b_) != 0)                           \
            ox_test_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s): \"%s\" != \"%s\"", #a, #b,        \
                         ox_a_ ? ox_a_ : "(null)", ox_b_ ? ox_b_ : "(null)");                      \
    } while (0)

/* Scale for loop counts: smaller under sanitizers (OX_TEST_SCALE, default
 * 1.0), so stress tests interleave for about the same wall time. */
long ox_test_scaled(long n);

/* A time bound that a test asserts or waits with (an "at most this late",
 * a timeout that must not expire, a give-up deadline), in nanoseconds,
 * times OX_TEST_TIMEOUT_SCALE: the factor of the runner's own timeouts, so
 * that sanitizers, qemu and a loaded machine stretch both alike. */
int64_t ox_test_bound(int64_t ns);

/* A stress test's length on a time budget, so that a loaded machine
 * shortens it instead of timing it out:
 *
 *   ox_test_budget b = ox_test_budget_start(500, ox_test_scaled(20000));
 *   for (long r = 0; ox_test_budget_more(&b, r); r++) ...
 *
 * More rounds while fewer than min are done (the least that still
 * interleaves enough for the test to prove its claim: pick it so that it
 * fails under its bug even then), never past max, and in between only
 * until the budget is used: OX_TEST_BUDGET_S seconds (default 2) times
 * OX_TEST_TIMEOUT_SCALE, well inside the runner's 30 s timeout scaled
 * alike. On an idle machine every test reaches its max, as before. */
typedef struct ox_test_budget {
    double deadline; /* CLOCK_MONOTONIC seconds */
    long min, max;
} ox_test_budget;

ox_test_budget ox_test_budget_start(long min, long max);
/* The same with a budget of its own: seconds times OX_TEST_TIMEOUT_SCALE,
 * for a test whose rounds take long even on an idle machine (a runner
 * timeout_s of its own goes with it). */
ox_test_budget ox_test_budget_start_s(long min, long max, double seconds);
/* Whether to start round done + 1 (done rounds are over). Any thread may
 * ask. */
bool ox_test_budget_more(const ox_test_budget *b, long done);
/* Whether the time budget is used (min and max aside). */
bool ox_test_budget_spent(const ox_test_budget *b);

/* Runs a program (argv[0] is a path) with a timeout; stdout and stderr are
 * captured into malloc'd strings (free them). Returns the wait status, or
 * -1 if it timed out (it is killed). */
int ox_test_run_program(char *const argv[], double timeout_s, char **out, char **err);

/* True (and says so on stdout) when the tests run under an emulator
 * (OX_TEST_WRAPPER: qemu-user in the aarch64 suites), whose own locks are
 * not fork-safe: a forked child of a threaded guest hangs in the emulator
 * now and then (test_fork.c has the evidence). Tests that fork while
 * threads run skip themselves there. */
bool ox_test_forks_hang_here(void);

/* The directory holding this build's example programs. */
const char *ox_test_examples_dir(void);

/* Runs the example program `name` of this build and checks that it exits
 * with expect_status and that its stdout is exactly the NULL-terminated
 * list of lines: in that order, or in any order if any_order (for output the
 * guide says may vary). Fails the test with a diff-like message if not. */
void ox_test_check_example(const char *name, int expect_status, bool any_order,
                           const char *const expected[]);

/* OX_TEST_BUILT_WITH_TSAN: this file was compiled with ThreadSanitizer
 * (the tsan suite), whose runtime changes what some tests may do. */
#if defined(__SANITIZE_THREAD__)
#define OX_TEST_BUILT_WITH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OX_TEST_BUILT_WITH_TSAN 1
#endif
#endif

/* OX_TEST_BUILT_WITH_ASAN: compiled with AddressSanitizer (the asan suite). */
#if defined(__SANITIZE_ADDRESS__)
#define OX_TEST_BUILT_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OX_TEST_BUILT_WITH_ASAN 1
#endif
#endif

#endif
