#!/bin/sh
# soak.sh DIR SECONDS - runs every stress program in DIR (a CHAOS=1 build)
# round-robin with a fresh seed each time until SECONDS have passed. Each
# run lasts up to 30 s; a run that takes a minute longer than asked is a
# hang: it gets SIGUSR1 first (OX_DUMP_SIGNAL=USR1: the blocked-thread dump
# goes to the log), then SIGKILL. Stops at the first failure, printing the
# program, both seeds and the replay command.
set -u
dir=$1
duration=${2:-60}
[ -d "$dir" ] || { echo "soak: no directory $dir"; exit 2; }
progs=$(ls "$dir"/stress_* 2>/dev/null)
[ -n "$progs" ] || { echo "soak: no stress programs in $dir"; exit 2; }
start=$(date +%s)
end=$((start + duration))
runs=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "soak: $(echo $progs | wc -w) programs, ${duration} s, from $(date -u +%FT%TZ)"
while :; do
    for p in $progs; do
        now=$(date +%s)
        left=$((end - now))
        [ $left -gt 0 ] || break 2
        secs=$((left < 30 ? left : 30))
        seed=$(( (now * 7919 + runs * 104729) % 1000000007 ))
        chaos=$(( (now * 31 + runs * 17) % 1000000007 ))
        rate=$(( 8 << (runs % 4) )) # 8, 16, 32, 64: heavy to light perturbation
        OX_DUMP_SIGNAL=USR1 OX_CHAOS_SEED=$chaos OX_CHAOS_RATE=$rate \
            timeout -s USR1 -k 5 $((secs + 60)) "$p" "$secs" "$seed" >"$out" 2>&1
        rc=$?
        runs=$((runs + 1))
        if [ $rc -ne 0 ]; then
            tail -n 60 "$out"
            [ $rc -ge 124 ] && echo "soak: $(basename "$p") hung (exit $rc)"
            echo "soak: FAILED after $runs runs, $((now - start)) s: $(basename "$p") exit $rc"
            echo "soak: replay: OX_CHAOS_SEED=$chaos OX_CHAOS_RATE=$rate $p $secs $seed"
            exit 1
        fi
        echo "soak: $(date -u +%T) $(tail -n 1 "$out") ($secs s, chaos seed $chaos rate $rate)"
    done
done
echo "soak: $runs runs, 0 failures, $(( $(date +%s) - start )) s"
