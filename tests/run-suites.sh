#!/bin/sh
# The full test command (make test): the suite built with gcc and clang at
# -O2 and -O0, with ThreadSanitizer (clang), with AddressSanitizer +
# UndefinedBehaviorSanitizer (gcc, leak checking on), with the schedule
# perturbation (CHAOS=1), cross-built for aarch64 (gcc and clang) and run
# under qemu-user;
# the randomized stress programs under CHAOS=1 (STRESS_SECONDS each,
# default 10) and a libFuzzer run (FUZZ_TIME, default 45 s); <oxide.h> built
# and run from C++ (g++ and clang++, C++17 and C++20); the exported symbols
# of liboxide.so against abi/liboxide.symbols; that dropping an OX_MUST_USE
# result warns; that a DLOPEN_SAFE=1 library can be dlopen'ed late; then
# an install used through pkg-config and CMake
# (tests/install/check.sh). Each variant builds in its own
# build/<variant>/ directory. Prints one closing line "N passed, N failed"
# summing them all.
#   SUITES="plain O0 clang ..."  which to run (default: all, see below)
#   JOBS=N                       parallel builds and tests (default 2)
# The packages the matrix needs (Debian): tests/packages.txt.
set -u
JOBS=${JOBS:-2}
SUITES=${SUITES:-plain O0 clang clang-O0 tsan asan chaos aarch64 aarch64-clang stress fuzz cxx abi must-use dlopen install}
MAKE=${MAKE:-make}
# Development and CI builds treat warnings as errors (a user's make does not).
export WERROR=1
AARCH64_SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
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

suite() { # label, build dir, make variables...
    label=$1
    dir=$2
    shift 2
    echo "==== suite: $label ($dir) ===="
    start=$(date +%s)
    if ! $MAKE -s -j"$JOBS" B="$dir" "$@" >"$log" 2>&1; then
        cat "$log"
        echo "FAIL build ($label)"
        failed=$((failed + 1))
        return
    fi
    # OX_TEST_WRAPPER (set by the aarch64 suite) runs the runner and every
    # test process it starts under the emulator.
    OX_TEST_LABEL="$label:" ${OX_TEST_WRAPPER:-} "$dir/tests/oxide-tests" -j "$JOBS" | tee "$log"
    count "$label"
    echo "==== suite: $label: $(($(date +%s) - start)) s ===="
}

# clang as well as gcc: a task may resume on another worker, and clang
# keeps aarch64's thread pointer (mrs) in a register across calls where
# gcc reads it afresh, so a thread-local whose address outlives a park
# shows in this build first (02589c3's lock-order cache did in no other).
aarch64_suite() { # label, C compiler
    for tool in "${2%% *}" aarch64-linux-gnu-gcc qemu-aarch64; do
        if ! command -v $tool >/dev/null 2>&1; then
            echo "FAIL $1: $tool is not installed (see tests/packages.txt)"
            failed=$((failed + 1))
            return
        fi
    done
    OX_TEST_WRAPPER="qemu-aarch64 -L $AARCH64_SYSROOT" OX_TEST_TIMEOUT_SCALE=4 \
        suite "$1" "build/$1" CC="$2" AR=aarch64-linux-gnu-ar
}

stress_suite() { # the stress programs under CHAOS=1, STRESS_SECONDS each
    echo "==== suite: stress (build/chaos) ===="
    start=$(date +%s)
    if ! $MAKE -s -j"$JOBS" CHAOS=1 stress >"$log" 2>&1; then
        cat "$log"
        echo "FAIL build (stress)"
        failed=$((failed + 1))
        return
    fi
    for p in build/chaos/stress/stress_*; do
        name=$(basename "$p")
        if OX_DUMP_SIGNAL=USR1 timeout -s USR1 -k 5 $((${STRESS_SECONDS:-10} + 60)) \
            "$p" "${STRESS_SECONDS:-10}" >"$log" 2>&1; then
            echo "ok   stress:$name ($(tail -n 1 "$log"))"
            passed=$((passed + 1))
        else
            tail -n 40 "$log"
            echo "FAIL stress:$name"
            failed=$((failed + 1))
        fi
    done
    echo "==== suite: stress: $(($(date +%s) - start)) s ===="
}

fuzz_suite() {
    echo "==== suite: fuzz ===="
    start=$(date +%s)
    if $MAKE -s -j"$JOBS" fuzz FUZZ_TIME="${FUZZ_TIME:-45}" >"$log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    cat "$log"
    echo "==== suite: fuzz: $(($(date +%s) - start)) s ===="
}

cxx_suite() { # <oxide.h> from g++ and clang++, C++17 and C++20
    echo "==== suite: cxx ===="
    if ! $MAKE -s -j"$JOBS" lib >"$log" 2>&1; then
        cat "$log"
        echo "FAIL build (cxx)"
        failed=$((failed + 1))
        return
    fi
    sh tests/cxx/run.sh build/liboxide.a build/cxx | tee "$log"
    count cxx
}

abi_suite() { # the exported symbols of liboxide.so against abi/liboxide.symbols
    echo "==== suite: abi ===="
    if ! $MAKE -s -j"$JOBS" lib >"$log" 2>&1; then
        cat "$log"
        echo "FAIL build (abi)"
        failed=$((failed + 1))
        return
    fi
    sh abi/check.sh build/liboxide.so abi/liboxide.symbols | tee "$log"
    count abi
}

install_check() { # tests/install/check.sh: pkg-config, CMake, DESTDIR, uninstall
    echo "==== suite: install ===="
    MAKE=$MAKE JOBS=$JOBS sh tests/install/check.sh | tee "$log"
    count install
}

for s in $SUITES; do
    case $s in
    plain) suite plain build ;;
    O0) suite O0 build/O0 OPT=-O0 ;;
    clang) suite clang build/clang CC=clang ;;
    clang-O0) suite clang-O0 build/clang-O0 CC=clang OPT=-O0 ;;
    # TSan with clang: gcc rejects atomic_thread_fence under -fsanitize=thread.
    tsan) OX_TEST_SCALE=0.25 OX_TEST_TIMEOUT_SCALE=4 \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        suite tsan build/tsan-clang SAN=tsan CC=clang ;;
    asan) OX_TEST_SCALE=0.5 OX_TEST_TIMEOUT_SCALE=3 \
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" suite asan build/asan SAN=asan ;;
    # Chaos points sit in every spin loop's backoff: a hand-off costs far
    # more than in the plain build, so the counts are scaled down.
    chaos) OX_TEST_SCALE=0.05 OX_TEST_TIMEOUT_SCALE=4 suite chaos build/chaos CHAOS=1 ;;
    aarch64) aarch64_suite aarch64 aarch64-linux-gnu-gcc ;;
    aarch64-clang) aarch64_suite aarch64-clang "clang --target=aarch64-linux-gnu" ;;
    stress) stress_suite ;;
    fuzz) fuzz_suite ;;
    cxx) cxx_suite ;;
    abi) abi_suite ;;
    must-use)
        echo "==== suite: must-use ===="
        sh tests/must_use/check.sh | tee "$log"
        count must-use
        ;;
    dlopen)
        echo "==== suite: dlopen ===="
        MAKE=$MAKE JOBS=$JOBS sh tests/dlopen/check.sh | tee "$log"
        count dlopen
        ;;
    install) install_check ;;
    *) echo "run-suites: unknown suite '$s'"; failed=$((failed + 1)) ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
