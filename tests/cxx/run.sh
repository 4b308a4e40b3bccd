#!/bin/sh
# Builds tests/cxx/test_cxx.cpp with each C++ compiler and standard, links it
# with the C library and runs it (make check, and the cxx suite of make test).
#   run.sh <liboxide.a> <build dir>
# CXX_COMPILERS (default "g++ clang++") and CXX_STDS (default "c++17 c++20")
# choose the matrix; CC compiles the C half of the layout comparison.
# Prints "ok   cxx:<compiler>-<std>" or "FAIL ..." per build and a closing
# line "N passed, N failed".
set -u
lib=$1
out=$2
passed=0
failed=0
mkdir -p "$out"
${CC:-cc} -std=c11 -Wall -Wextra -Werror -Iinclude -c tests/cxx/layout.c -o "$out/layout.o" || {
    echo "FAIL cxx: layout.c does not compile"
    echo "0 passed, 1 failed"
    exit 1
}
for cxx in ${CXX_COMPILERS:-g++ clang++}; do
    for std in ${CXX_STDS:-c++17 c++20}; do
        name=$cxx-$std
        bin=$out/test_cxx-$name
        if ! command -v "$cxx" >/dev/null 2>&1; then
            echo "FAIL cxx:$name: $cxx is not installed (see tests/packages.txt)"
            failed=$((failed + 1))
        elif ! "$cxx" -std="$std" -Wall -Wextra -Wpedantic -Werror -Iinclude -pthread -g \
            tests/cxx/test_cxx.cpp "$out/layout.o" "$lib" -o "$bin"; then
            echo "FAIL cxx:$name (build)"
            failed=$((failed + 1))
        elif ! msg=$(timeout 120 "$bin"); then
            echo "FAIL cxx:$name"
            failed=$((failed + 1))
        else
            echo "ok   cxx:$name ($msg)"
            passed=$((passed + 1))
        fi
    done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
