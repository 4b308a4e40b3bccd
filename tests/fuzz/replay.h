/* replay.h - the deterministic op-script interpreter (replay.c): the same
 * input runs the same interleaving every time, so a crash reproduces. Used
 * by the libFuzzer harness fuzz_replay.c and by the replay test
 * (tests/test_fuzz_replay.c). */
#ifndef OX_FUZZ_REPLAY_H
#define OX_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

/* A bug planted in the interpreter itself, to show that the invariant
 * checks fire (the replay test expects each to abort). */
enum ox_replay_fault {
    OX_REPLAY_NO_FAULT,
    OX_REPLAY_LOSE_MESSAGE, /* the first message received is never accounted */
    OX_REPLAY_SKIP_NOTIFY,  /* a condvar notify "forgets" to notify */
    OX_REPLAY_DOUBLE_ARC,   /* an Arc drop is counted twice in the model */
};

typedef struct ox_replay_result {
    uint64_t trace;   /* a hash of every operation and its outcome, in order */
    long ops;         /* operations run */
    long messages;    /* messages constructed */
    long deadlocks;   /* times every script was blocked (one was then aborted) */
    long panics;      /* panics raised on purpose */
    long selects;     /* blocking selects that completed an operation */
    long cv_waits;    /* condvar waits that returned */
    long arc_drops;   /* Arc values destroyed */
    long once_panics; /* Once initialisers that panicked */
} ox_replay_result;

/* Interprets the op script data[0..size) (layout in replay.c) on a fresh
 * one-worker runtime and fills *out. Aborts with "fuzz_replay: invariant
 * failed" on a violated invariant. Not reentrant: one run at a time. */
void ox_replay_run(const uint8_t *data, size_t size, enum ox_replay_fault fault,
                   ox_replay_result *out);

#endif
