#!/bin/sh
# make bench [BENCH=substring]: oxide's benchmarks, then the same workloads
# on every peer whose toolchain is present (bench/peers/run-peers.sh says
# which it skipped). Output: workload<TAB>implementation<TAB>ns_per_op
filter=${1:-}
B=${B:-build}
"$B/bench/oxide-bench" "$filter" || exit 1
if [ -f bench/peers/run-peers.sh ]; then
    sh bench/peers/run-peers.sh "$filter"
fi
