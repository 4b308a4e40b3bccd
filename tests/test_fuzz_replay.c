/* The replaying fuzzer's interpreter (tests/fuzz/replay.c) in the test
 * suite: every input of its corpus, and a fixed set of generated scripts,
 * run twice with identical traces, and with their invariants holding; and
 * the invariant checks fire on bugs planted in the interpreter itself. */
#include "fuzz/replay.h"
#include "runner.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_INPUT = 600 };

static void sum(ox_replay_result *total, const ox_replay_result *r)
{
    total->ops += r->ops;
    total->messages += r->messages;
    total->deadlocks += r->deadlocks;
    total->panics += r->panics;
    total->selects += r->selects;
    total->cv_waits += r->cv_waits;
    total->arc_drops += r->arc_drops;
    total->once_panics += r->once_panics;
}

static void run_twice(const uint8_t *data, size_t size, ox_replay_result *total)
{
    ox_replay_result a, b;
    ox_replay_run(data, size, OX_REPLAY_NO_FAULT, &a);
    ox_replay_run(data, size, OX_REPLAY_NO_FAULT, &b);
    CHECK(a.trace == b.trace);
    CHECK_EQ(a.ops, b.ops);
    CHECK_EQ(a.deadlocks, b.deadlocks);
    sum(total, &a);
}

/* Every kind of event the fuzzer claims to cover happened at least once. */
static void check_coverage(const ox_replay_result *t)
{
    printf("ops %ld, messages %ld, all-blocked %ld, panics %ld, selects %ld, condvar waits %ld, "
           "Arc drops %ld, Once panics %ld\n",
           t->ops, t->messages, t->deadlocks, t->panics, t->selects, t->cv_waits, t->arc_drops,
           t->once_panics);
    CHECK(t->messages > 0 && t->deadlocks > 0 && t->panics > 0 && t->selects > 0);
    CHECK(t->cv_waits > 0 && t->arc_drops > 0 && t->once_panics > 0);
}

/* A fixed stream of scripts (xorshift from a constant seed). */
static size_t generate(uint64_t *x, uint8_t *buf)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    size_t len = 4 + 2 * (size_t)(*x % 200);
    for (size_t i = 0; i < len; i++) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        buf[i] = (uint8_t)(*x >> 24);
    }
    return len;
}

OX_TEST(fuzz_replay_corpus_replays_identically)
{
    DIR *d = opendir(OX_REPLAY_CORPUS);
    CHECK(d != NULL);
    ox_replay_result total = {0};
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", OX_REPLAY_CORPUS, e->d_name);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        uint8_t buf[MAX_INPUT];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        run_twice(buf, n, &total);
        files++;
    }
    closedir(d);
    CHECK(files >= 10);
    check_coverage(&total);
}

OX_TEST(fuzz_replay_generated_scripts_replay_identically)
{
    uint64_t x = 88172645463325252u;
    ox_replay_result total = {0};
    long n = ox_test_scaled(400);
    for (long k = 0; k < n; k++) {
        uint8_t buf[MAX_INPUT];
        size_t len = generate(&x, buf);
        run_twice(buf, len, &total);
    }
    check_coverage(&total);
}

/* Runs generated scripts with a planted bug: the checks must abort on one
 * of them (the runner fails the test if the body returns). */
static void run_faulty(enum ox_replay_fault fault)
{
    uint64_t x = 88172645463325252u;
    for (int k = 0; k < 400; k++) {
        uint8_t buf[MAX_INPUT];
        size_t len = generate(&x, buf);
        ox_replay_result r;
        ox_replay_run(buf, len, fault, &r);
    }
}

OX_TEST_OPTS(fuzz_replay_catches_a_lost_message, .expect_signal = SIGABRT,
             .expect_stderr = "fuzz_replay: invariant failed")
{
    run_faulty(OX_REPLAY_LOSE_MESSAGE);
}

OX_TEST_OPTS(fuzz_replay_catches_a_lost_notify, .expect_signal = SIGABRT,
             .expect_stderr = "W.cv_") /* cv_tokens or cv_gen: a waiter missed */
{
    run_faulty(OX_REPLAY_SKIP_NOTIFY);
}

OX_TEST_OPTS(fuzz_replay_catches_a_miscounted_arc, .expect_signal = SIGABRT,
             .expect_stderr = "fuzz_replay: invariant failed")
{
    run_faulty(OX_REPLAY_DOUBLE_ARC);
}
