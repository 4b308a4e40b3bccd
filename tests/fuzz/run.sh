#!/bin/sh
# run.sh FUZZER SECONDS - a libFuzzer run seeded from tests/fuzz/corpus.
# New inputs go to a scratch directory (the tree's corpus is read only);
# a crash leaves its input in build/fuzz/ and the run fails.
set -u
bin=$1
secs=${2:-45}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p build/fuzz
"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=600 \
    -artifact_prefix=build/fuzz/ -print_final_stats=1 "$scratch" tests/fuzz/corpus \
    >build/fuzz/last.log 2>&1
rc=$?
grep -E "^(stat::number_of_executed_units|stat::new_units_added)|ERROR|invariant|SUMMARY" build/fuzz/last.log
if [ $rc -ne 0 ]; then
    tail -n 40 build/fuzz/last.log
    echo "FAIL fuzz:fuzz_sync (exit $rc; inputs in build/fuzz/, log build/fuzz/last.log)"
    exit 1
fi
echo "ok   fuzz:fuzz_sync ($secs s)"
