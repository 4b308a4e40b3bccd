#!/bin/sh
# run.sh FUZZER SECONDS [CORPUS] - a libFuzzer run seeded from CORPUS
# (default tests/fuzz/corpus). New inputs go to a scratch directory (the
# tree's corpus is read only); a crash leaves its input in build/fuzz/ and
# the run fails. Replay a crash with `FUZZER build/fuzz/crash-...`
# (docs/testing.md).
set -u
bin=$1
secs=${2:-45}
corpus=${3:-tests/fuzz/corpus}
name=$(basename "$bin")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p build/fuzz
log=build/fuzz/$name.log
"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=600 \
    -artifact_prefix=build/fuzz/ -print_final_stats=1 "$scratch" "$corpus" \
    >"$log" 2>&1
rc=$?
grep -E "^(stat::number_of_executed_units|stat::new_units_added)|ERROR|invariant|SUMMARY" "$log"
if [ $rc -ne 0 ]; then
    tail -n 40 "$log"
    echo "FAIL fuzz:$name (exit $rc; inputs in build/fuzz/, log $log)"
    exit 1
fi
echo "ok   fuzz:$name ($secs s)"
