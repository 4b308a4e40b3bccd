#!/bin/sh
# OX_MUST_USE works: tests/must_use/ignored.c drops the result of every
# marked function once, on a line marked "warns"; each compiler named in
# MUST_USE_COMPILERS (default: gcc, clang, g++, clang++) must warn on
# exactly those lines. Prints "ok   must-use:<compiler>" per compiler and
# a closing line "N passed, N failed".
set -u
passed=0
failed=0
f=tests/must_use/ignored.c
expected=$(grep -n '/\* warns \*/' "$f" | cut -d: -f1 | sort -n | tr '\n' ' ')
for cc in ${MUST_USE_COMPILERS:-gcc clang g++ clang++}; do
    case $cc in
    *++) lang="-x c++ -std=c++17" ;;
    *) lang="-std=c11" ;;
    esac
    # Each warning names the line of the call (for a macro, the line where
    # it was expanded: gcc's "in expansion of macro" note, clang's caret).
    got=$($cc $lang -c -o /dev/null -Wall -Wunused-result -Iinclude -D_POSIX_C_SOURCE=200809L \
        "$f" 2>&1 | sed -n "s|^$f:\([0-9]*\):[0-9]*: .*|\1|p" | sort -nu | tr '\n' ' ')
    if [ "$got" = "$expected" ]; then
        echo "ok   must-use:$cc"
        passed=$((passed + 1))
    else
        echo "FAIL must-use:$cc: warned on lines [$got], expected [$expected]"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
