#!/bin/sh
# make mutate: the mutation check. Each tests/mutations/NAME.mut injects one
# known bug into a copy of the tree; the tests it names must then fail. A
# mutation that survives (its tests pass), that no longer applies, that does
# not build or whose tests match no test name fails the whole check.
#   sh tests/mutate.sh [NAME...]    only the named mutations
#   JOBS=N                          parallel builds and tests (default 2)
# The copy lives in build/mutate/: built once per suite (plain, tsan, chaos) and
# the build saved; a mutation rebuilds only what it touches, then the
# original files and the saved build are put back (no rebuild to undo it).
set -u
JOBS=${JOBS:-2}
MAKE=${MAKE:-make}
root=$(pwd)
apply="perl $root/tests/mutations/apply.pl"
if [ $# -gt 0 ]; then
    muts=$(for n in "$@"; do echo "tests/mutations/$n.mut"; done)
else
    muts=$(ls tests/mutations/*.mut)
fi

# Every mutation must still apply to the tree as it is, before any build.
bad=0
for m in $muts; do
    $apply "$m" --check || bad=1
done
[ $bad = 0 ] || { echo "mutate: fix the mutations above"; exit 1; }

# One run at a time: a second would delete the first one's copy.
mkdir -p build/mutate
if ! mkdir build/mutate/running 2>/dev/null; then
    echo "mutate: another make mutate runs here (else remove build/mutate/running)"
    exit 1
fi
trap 'rmdir "$root/build/mutate/running"' EXIT
tree=build/mutate/tree
rm -rf "$tree"
mkdir -p "$tree"
for entry in *; do
    [ "$entry" = build ] || cp -a "$entry" "$tree"/
done
log=$root/build/mutate/log

build() { # suite: builds the test binary (and examples) of that suite's dir
    case $1 in
    plain) (cd "$tree" && $MAKE -s -j"$JOBS" B=build/plain testbin) ;;
    tsan) (cd "$tree" && $MAKE -s -j"$JOBS" B=build/tsan SAN=tsan CC=clang testbin) ;;
    chaos) (cd "$tree" && $MAKE -s -j"$JOBS" B=build/chaos CHAOS=1 testbin) ;;
    esac >"$log" 2>&1
}

mul() { awk "BEGIN { print $1 * $2 }"; }

# A mutation's timeout_scale (below 1 for one that makes its test hang)
# times the caller's OX_TEST_TIMEOUT_SCALE. Stress tests run on a time
# budget (ox_test_budget in tests/runner.h) that a loaded machine would
# cut short: here it is 10 s, so that a mutated test reaches its full count
# wherever it can, not only its minimum.
export OX_TEST_BUDGET_S="${OX_TEST_BUDGET_S:-10}"
# A subshell each, so that a mutation's env words end with its run.
run() ( # suite, timeout scale, env words, test name substrings...
    suite=$1
    scale=$(mul "$2" "${OX_TEST_TIMEOUT_SCALE:-1}")
    for word in $3; do # NAME=VALUE words, checked by apply.pl
        export "${word?}"
    done
    shift 3
    if [ "$suite" = tsan ]; then
        (cd "$tree" && OX_TEST_SCALE=0.25 OX_TEST_TIMEOUT_SCALE=$(mul "$scale" 4) \
            TSAN_OPTIONS="halt_on_error=1" build/tsan/tests/oxide-tests -x -j "$JOBS" "$@")
    elif [ "$suite" = chaos ]; then
        (cd "$tree" && OX_TEST_TIMEOUT_SCALE=$scale build/chaos/tests/oxide-tests -x -j "$JOBS" "$@")
    else
        (cd "$tree" && OX_TEST_TIMEOUT_SCALE=$scale build/plain/tests/oxide-tests -x -j "$JOBS" "$@")
    fi >"$log" 2>&1
)

caught=0
failed=0
built=""
start=$(date +%s)
for m in $muts; do
    name=$(basename "$m" .mut)
    suite=$($apply "$m" suite)
    tests=$($apply "$m" tests)
    case " $built " in
    *" $suite "*) ;;
    *)
        echo "mutate: building the $suite suite"
        if ! build "$suite"; then
            cat "$log"
            echo "mutate: the unmutated $suite build fails"
            exit 1
        fi
        cp -a "$tree/build/$suite" "$tree/build/$suite.clean"
        built="$built $suite"
        ;;
    esac
    t0=$(date +%s)
    files=$($apply "$m" files)
    for f in $files; do cp -p "$tree/$f" "$tree/$f.orig"; done
    if ! $apply "$m" "$tree"; then
        echo "FAIL mutation $name: does not apply"
        failed=$((failed + 1))
    elif ! build "$suite"; then
        tail -n 20 "$log"
        echo "FAIL mutation $name: does not build"
        failed=$((failed + 1))
    else
        # A survivor runs its tests again, up to three runs in all: many
        # mutations open a race window that a run meets only by chance
        # (park_lot_no_recheck_after_growth survived one .ci/run of three,
        # and was caught three times of three by hand). One failing run
        # is enough to show the tests bite.
        attempt=0
        while [ $attempt -lt 3 ]; do
            attempt=$((attempt + 1))
            # shellcheck disable=SC2086
            run "$suite" "$($apply "$m" timeout_scale)" "$($apply "$m" env)" $tests
            status=$?
            summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
            by=$(grep '^FAIL ' "$log" | head -n 1 | cut -d' ' -f2)
            case $summary in
            '' | '0 passed, 0 failed') break ;;
            esac
            if [ "$status" -ne 0 ] && [ -n "$by" ]; then
                break
            fi
        done
        if [ "$status" -ne 0 ] && [ -n "$by" ]; then
            echo "ok   mutation $name ($suite): caught by $by ($(($(date +%s) - t0)) s)"
            caught=$((caught + 1))
        elif [ -z "$summary" ]; then
            tail -n 20 "$log"
            echo "FAIL mutation $name: the runner printed no closing line"
            failed=$((failed + 1))
        elif [ "$summary" = "0 passed, 0 failed" ]; then
            echo "FAIL mutation $name: 'tests: $tests' matches no test"
            failed=$((failed + 1))
        else
            tail -n 20 "$log"
            echo "FAIL mutation $name ($suite): SURVIVED, its tests passed ($summary)"
            failed=$((failed + 1))
        fi
    fi
    # The originals keep their old times, older than the saved build.
    for f in $files; do mv "$tree/$f.orig" "$tree/$f"; done
    rm -rf "$tree/build/$suite"
    cp -a "$tree/build/$suite.clean" "$tree/build/$suite"
done
echo "mutate: $caught caught, $failed failed ($(($(date +%s) - start)) s)"
[ $failed -eq 0 ]
