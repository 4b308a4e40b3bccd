#!/bin/sh
# make bench [BENCH=substring] [LOAD=n]: oxide's benchmarks, then the same
# workloads on every peer whose toolchain is present (bench/peers/run-peers.sh
# says which it skipped). Output: workload<TAB>implementation<TAB>ns_per_op, the
# median of OX_BENCH_ROUNDS rounds (default 5: the hand-offs with more
# threads than cores swing 2x from one process to the next, and five
# samples keep one unlucky process from deciding the median; 11 with LOAD,
# where every row swings so: 15 rounds of mutex_uncontended beside two busy
# loops took 13.6-29.0 ns on oxide and 12.1-25.3 on parking_lot, as their
# threads were preempted more or less often, and five rounds' medians
# ranked them either way from one run to the next).
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
#
# LOAD=n (OX_BENCH_LOAD): n busy-loop processes at normal priority compete
# for the CPUs while every round runs (the I/O workloads' too), as on a
# machine that is not idle. They start after the peers are built, the load
# is printed with the figures, and they are killed when this script ends,
# however it ends (a loop also quits by itself once this script is gone,
# even after a kill -9). Loop i is pinned to the (i mod n)-th of the n CPUs
# this script may use, so that every CPU carries the same load. Unpinned, 2
# loops and a single-threaded round on 2 CPUs are 3 threads on 2 CPUs, and
# the scheduler leaves whichever it placed alone there:
# rwlock_uncontended_read took 4.2-4.6 or 8.2-9.8 ns a round on oxide (4 of
# 11 rounds fast) and 4.8 or 9.4-9.8 on Rust std (4 of 11), so the medians
# ranked them by how many rounds drew a CPU of their own (run r's ratio was
# 1.58). Pinned, 8.2-9.5 against 9.2-9.6; the hand-offs' spread narrows too
# (chan_mpsc_bounded0, 11 rounds: oxide 439-3036 ns unpinned, 448-2089
# pinned; crossbeam 472-3704 and 676-1310).
filter=${1:-}
B=${B:-build}
load=${OX_BENCH_LOAD:-0}
case $load in
'' | *[!0-9]*)
    echo "bench: LOAD must be a number of busy loops, not '$load'" >&2
    exit 2
    ;;
esac
# Past what the shell's test can compare, no loop would start.
[ "$load" -le 1024 ] 2>/dev/null || {
    echo "bench: LOAD=$load is too many busy loops (at most 1024)" >&2
    exit 2
}
if [ "$load" -gt 0 ]; then
    rounds=${OX_BENCH_ROUNDS:-11}
else
    rounds=${OX_BENCH_ROUNDS:-5}
fi
workloads=$("$B/bench/oxide-bench" --list | grep -F -- "$filter")
io=$(sh bench/io/run-io.sh --list | grep -F -- "$filter")
if [ -z "$workloads" ] && [ -z "$io" ]; then
    echo "bench: no workload matches '$filter'" >&2
    exit 1
fi
status=0
tab=$(printf '\t')
tmp=$(mktemp -d) || exit 1
load_pids=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    # shellcheck disable=SC2086 # a list of process ids
    [ -z "$load_pids" ] || kill $load_pids 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# A signal ends the script through the EXIT trap, which kills the loops.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# The peers are built first and listed as name<TAB>binary<TAB>implementation.
if [ -n "$workloads" ] && [ -f bench/peers/run-peers.sh ]; then
    OX_PEERS_LIST=$tmp/peers sh bench/peers/run-peers.sh "$filter" || status=1
fi
touch "$tmp/peers"
# oxide-bench's own peers (c-atomic, arc_clone_drop's floor) get a process
# of their own too: run after oxide in the same process, the floor met the
# scheduler's placement later than oxide did (beside two busy loops, 3 of
# 15 oxide rounds took 8 ns against none of the floor's, and run q's
# median was 7.5 against 4.4).
"$B/bench/oxide-bench" --impls | grep -v '^oxide$' | while read -r implementation; do
    printf '%s\t%s\t%s\n' "$implementation" "$B/bench/oxide-bench" "$implementation"
done >>"$tmp/peers"

# The CPUs this script may run on (taskset -c takes their numbers, which
# need not be 0..n-1), one per line.
allowed_cpus=$(awk '/^Cpus_allowed_list:/ {
        n = split($2, part, ",")
        for (p = 1; p <= n; p++) {
            if (split(part[p], r, "-") == 1) r[2] = r[1]
            for (c = r[1]; c <= r[2]; c++) print c
        }
    }' /proc/self/status)
cpus=$(echo "$allowed_cpus" | wc -l)
if [ "$load" -gt 0 ] && { [ -z "$allowed_cpus" ] || ! command -v taskset >/dev/null; }; then
    echo "bench: LOAD needs taskset (util-linux) and /proc/self/status to pin its loops" >&2
    exit 2
fi
# A loop whose taskset failed would die in the background and leave less
# load than the '# load:' line states: try each CPU first.
for cpu in $(echo "$allowed_cpus" | head -n "$load"); do
    taskset -c "$cpu" true || {
        echo "bench: LOAD cannot pin a busy loop to CPU $cpu" >&2
        exit 2
    }
done
# The busy loops: each checks now and then that this script still runs.
i=0
while [ "$i" -lt "$load" ]; do
    # shellcheck disable=SC2016 # the loop's script, expanded by its own shell
    taskset -c "$(echo "$allowed_cpus" | sed -n "$((i % cpus + 1))p")" sh -c 'n=0
        while :; do
            n=$((n + 1))
            if [ "$n" -ge 100000 ]; then
                kill -0 "$1" 2>/dev/null || exit 0
                n=0
            fi
        done' busy-loop $$ &
    load_pids="$load_pids $!"
    i=$((i + 1))
done
loadavg() { cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown; }
pinned=
[ "$load" -eq 0 ] || pinned=", pinned round-robin,"
echo "# load: $load busy loops$pinned on $cpus CPUs; load average $(loadavg) at the start; the median of $rounds rounds"

for w in $workloads; do
    : >"$tmp/samples"
    : >"$tmp/notes"
    r=0
    while [ "$r" -lt "$rounds" ]; do
        OX_BENCH_ROUNDS=1 OX_BENCH_IMPL=oxide "$B/bench/oxide-bench" "=$w" >>"$tmp/samples" ||
            status=1
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
    # upper one of an even count, as the harnesses pick). Then, on a
    # comment line, each one's fastest and slowest round: with LOAD a
    # row's rounds can swing several-fold, and a median read without its
    # spread claims more than it shows.
    awk -F '\t' '
        NF == 3 { if (!($2 in n)) order[k++] = $2; v[$2, n[$2]++] = $3 }
        END {
            for (i = 0; i < k; i++) {
                m = order[i]
                for (a = 0; a < n[m]; a++) s[a] = v[m, a] + 0
                for (a = 1; a < n[m]; a++)
                    for (b = a; b > 0 && s[b - 1] > s[b]; b--) { t = s[b]; s[b] = s[b - 1]; s[b - 1] = t }
                printf "%s\t%s\t%.1f\n", workload, m, s[int(n[m] / 2)]
                spread = spread sprintf("\t%s %.1f-%.1f", m, s[0], s[n[m] - 1])
            }
            if (k > 0)
                printf "# rounds\t%s%s\n", workload, spread
        }' workload="$w" "$tmp/samples" | tee -a "$tmp/medians"
    # Skip notes and failures once each, not once per round.
    awk '!seen[$0]++' "$tmp/notes" >&2
done
# What to read first: per workload, oxide's median over the fastest peer's
# (below 1.0, oxide is ahead). Go's goroutines and Tokio's tasks are the
# peers of the task_ workloads only; elsewhere the peers are OS threads
# (and c-atomic, arc_clone_drop's floor).
if [ -s "$tmp/medians" ]; then
    echo "# oxide / the fastest OS-thread peer (task_: the fastest peer, Go and Tokio too):"
    awk -F '\t' '
        /^#/ { next }
        $2 == "oxide" { oxide[$1] = $3; order[k++] = $1; next }
        $1 !~ /^task_/ && ($2 == "go" || $2 == "tokio") { next }
        !($1 in best) || $3 + 0 < best[$1] + 0 { best[$1] = $3 + 0; who[$1] = $2 }
        END {
            for (i = 0; i < k; i++) {
                w = order[i]
                if ((w in best) && best[w] > 0)
                    printf "# ratio\t%s\t%.2f\t%s\n", w, oxide[w] / best[w], who[w]
            }
        }' "$tmp/medians"
fi
if [ -n "$io" ]; then
    B=$B sh bench/io/run-io.sh "$filter" || status=1
fi
echo "# load: $load busy loops; load average $(loadavg) at the end"
exit $status
