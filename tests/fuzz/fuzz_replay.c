/* fuzz_replay - a libFuzzer harness over the replaying interpreter
 * (replay.c): the input is an op script whose "threads" are tasks on one
 * worker thread, interleaved as the input says, so an input that crashes
 * crashes again, the same way, every time it is run.
 *
 * Each input runs twice and the two traces must match: a difference means
 * the interleaving escaped the input's control (a timer, another thread,
 * an unseeded random choice), and the run aborts.
 *
 *   make fuzz                          builds and runs it (and fuzz_sync)
 *   build/fuzz/fuzz_replay CRASH       replays one input
 *   OX_REPLAY_VERBOSE=1 build/fuzz/fuzz_replay CRASH
 *                                      ... printing every op and its outcome
 */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ox_replay_result a, b;
    ox_replay_run(data, size, OX_REPLAY_NO_FAULT, &a);
    ox_replay_run(data, size, OX_REPLAY_NO_FAULT, &b);
    if (a.trace != b.trace) {
        fprintf(stderr,
                "fuzz_replay: invariant failed: two runs of one input differ (%llx, %llx)\n",
                (unsigned long long)a.trace, (unsigned long long)b.trace);
        abort();
    }
    return 0;
}
