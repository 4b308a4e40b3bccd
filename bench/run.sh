#!/bin/sh
# make bench [BENCH=substring]: oxide's benchmarks, then the same workloads
# on every peer whose toolchain is present (bench/peers/run-peers.sh says
# which it skipped). Output: workload<TAB>implementation<TAB>ns_per_op, the
# median of OX_BENCH_ROUNDS rounds (default 5: the hand-offs with more
# threads than cores swing 2x from one process to the next, and five
# samples keep one unlucky process from deciding the median).
#
# Every round of every workload runs in a fresh process for every
# implementation, so none inherits another's heap state (glibc's trim
# threshold, for one, moves after a large free and changes what the next
# workload pays for page faults). The rounds take turns: oxide, each peer,
# oxide again, ... This VM switches between faster and slower states for
# seconds to minutes at a time, and a comparison should see them all alike,
# not catch one implementation's whole measurement in a slow spell.
#
# Then the I/O workloads (io_*), which start a server per implementation
# and load it: bench/io/run-io.sh, with its own rounds (OX_IO_ROUNDS).
filter=${1:-}
B=${B:-build}
rounds=${OX_BENCH_ROUNDS:-5}
workloads=$("$B/bench/oxide-bench" --list | grep -F -- "$filter")
io=$(sh bench/io/run-io.sh --list | grep -F -- "$filter")
if [ -z "$workloads" ] && [ -z "$io" ]; then
    echo "bench: no workload matches '$filter'" >&2
    exit 1
fi
status=0
tab=$(printf '\t')
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# The peers are built first and listed as name<TAB>binary<TAB>implementation.
if [ -n "$workloads" ] && [ -f bench/peers/run-peers.sh ]; then
    OX_PEERS_LIST=$tmp/peers sh bench/peers/run-peers.sh "$filter" || status=1
fi
touch "$tmp/peers"

for w in $workloads; do
    : >"$tmp/samples"
    : >"$tmp/notes"
    r=0
    while [ "$r" -lt "$rounds" ]; do
        OX_BENCH_ROUNDS=1 "$B/bench/oxide-bench" "=$w" >>"$tmp/samples" || status=1
        while IFS=$tab read -r name binary implementation; do
            OX_BENCH_ROUNDS=1 OX_BENCH_IMPL=$implementation "$binary" "=$w" \
                >>"$tmp/samples" 2>>"$tmp/notes" || {
                echo "# failed $name: $binary =$w exited with status $?" >>"$tmp/notes"
                status=1
            }
        done <"$tmp/peers"
        r=$((r + 1))
    done
    # Per implementation, in order of first appearance: the median (the
    # upper one of an even count, as the harnesses pick).
    awk -F '\t' '
        NF == 3 { if (!($2 in n)) order[k++] = $2; v[$2, n[$2]++] = $3 }
        END {
            for (i = 0; i < k; i++) {
                m = order[i]
                for (a = 0; a < n[m]; a++) s[a] = v[m, a] + 0
                for (a = 1; a < n[m]; a++)
                    for (b = a; b > 0 && s[b - 1] > s[b]; b--) { t = s[b]; s[b] = s[b - 1]; s[b - 1] = t }
                printf "%s\t%s\t%.1f\n", workload, m, s[int(n[m] / 2)]
            }
        }' workload="$w" "$tmp/samples"
    # Skip notes and failures once each, not once per round.
    awk '!seen[$0]++' "$tmp/notes" >&2
done
if [ -n "$io" ]; then
    B=$B sh bench/io/run-io.sh "$filter" || status=1
fi
exit $status
