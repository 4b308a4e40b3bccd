#!/bin/sh
# The full test command (make test): the suite built plain, with
# ThreadSanitizer, with AddressSanitizer+UndefinedBehaviorSanitizer (leak
# checking on), then an install checked through pkg-config. Prints one
# closing line "N passed, N failed" summing them all.
#   SUITES="plain tsan asan install"  which to run (default: all)
#   JOBS=N                            parallel builds and tests (default 2)
set -u
JOBS=${JOBS:-2}
SUITES=${SUITES:-plain tsan asan install}
MAKE=${MAKE:-make}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # adds the closing line of a runner's output in $log
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "run-suites: $1: the runner printed no closing line"
        failed=$((failed + 1))
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
}

suite() { # label, make variables...
    label=$1
    shift
    echo "==== suite: $label ===="
    if ! $MAKE -s -j"$JOBS" "$@" >"$log" 2>&1; then
        cat "$log"
        echo "FAIL build ($label)"
        failed=$((failed + 1))
        return
    fi
    dir=build
    case "$label" in tsan | asan) dir=build/$label ;; esac
    OX_TEST_LABEL="$label:" "$dir/tests/oxide-tests" -j "$JOBS" | tee "$log"
    count "$label"
}

install_check() {
    echo "==== suite: install ===="
    tmp=$(mktemp -d)
    ok=1
    if ! $MAKE -s -j"$JOBS" install PREFIX="$tmp" >"$log" 2>&1; then
        cat "$log"
        ok=0
    fi
    export PKG_CONFIG_PATH="$tmp/lib/pkgconfig"
    for how in shared static; do
        [ $ok = 1 ] || break
        flags=$(pkg-config --cflags --libs oxide) || { ok=0; break; }
        [ $how = static ] && flags="$(pkg-config --cflags oxide) $tmp/lib/liboxide.a -pthread"
        if ${CC:-cc} -std=c11 -Wall -Werror tests/install/hello.c $flags -o "$tmp/hello" &&
            out=$(LD_LIBRARY_PATH="$tmp/lib" "$tmp/hello") &&
            [ "$out" = "hello from thread 'installed', result 42" ]; then
            echo "ok   install:pkg-config-$how"
            passed=$((passed + 1))
        else
            echo "FAIL install:pkg-config-$how (output: ${out:-none})"
            failed=$((failed + 1))
        fi
    done
    [ $ok = 1 ] || { echo "FAIL install"; failed=$((failed + 1)); }
    rm -rf "$tmp"
}

for s in $SUITES; do
    case $s in
    plain) suite plain ;;
    tsan) OX_TEST_SCALE=0.25 OX_TEST_TIMEOUT_SCALE=4 \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" suite tsan SAN=tsan ;;
    asan) OX_TEST_SCALE=0.5 OX_TEST_TIMEOUT_SCALE=3 \
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" suite asan SAN=asan ;;
    install) install_check ;;
    *) echo "run-suites: unknown suite '$s'"; failed=$((failed + 1)) ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
