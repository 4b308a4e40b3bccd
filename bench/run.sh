#!/bin/sh
# make bench [BENCH=substring]: oxide's benchmarks, then the same workloads
# on every peer whose toolchain is present (bench/peers/run-peers.sh says
# which it skipped). Output: workload<TAB>implementation<TAB>ns_per_op
#
# Every workload runs in a fresh process for every implementation, so none
# inherits another's heap state (glibc's trim threshold, for one, moves after
# a large free and changes what the next workload pays for page faults), and
# all implementations of one workload run one after another.
filter=${1:-}
B=${B:-build}
workloads=$("$B/bench/oxide-bench" --list | grep -F -- "$filter") || {
    echo "bench: no workload matches '$filter'" >&2
    exit 1
}
status=0
# Build the peers first (run-peers.sh says which it skipped), then run each
# workload on oxide and on every peer back to back: this VM's speed drifts
# over minutes, and a comparison should not span that drift.
tab=$(printf '\t')
peers=$(mktemp) || exit 1
trap 'rm -f "$peers"' EXIT
if [ -f bench/peers/run-peers.sh ]; then
    OX_PEERS_LIST=$peers sh bench/peers/run-peers.sh "$filter" || status=1
fi
for w in $workloads; do
    "$B/bench/oxide-bench" "=$w" || status=1
    while IFS=$tab read -r name binary implementation; do
        OX_BENCH_IMPL=$implementation "$binary" "=$w" || {
            echo "# failed $name: $binary =$w exited with status $?" >&2
            status=1
        }
    done <"$peers"
done
exit $status
