#!/bin/sh
# make bench [BENCH=substring]: oxide's benchmarks, then the same workloads
# on every peer whose toolchain is present (bench/peers/run-peers.sh says
# which it skipped). Output: workload<TAB>implementation<TAB>ns_per_op
#
# Every workload runs in a fresh process for every implementation, so none
# inherits another's heap state (glibc's trim threshold, for one, moves after
# a large free and changes what the next workload pays for page faults).
filter=${1:-}
B=${B:-build}
workloads=$("$B/bench/oxide-bench" --list | grep -F -- "$filter") || {
    echo "bench: no workload matches '$filter'" >&2
    exit 1
}
status=0
for w in $workloads; do
    "$B/bench/oxide-bench" "=$w" || status=1
done
if [ -f bench/peers/run-peers.sh ]; then
    OX_BENCH_WORKLOADS=$workloads sh bench/peers/run-peers.sh "$filter" || status=1
fi
exit $status
