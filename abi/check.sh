#!/bin/sh
# The exported-symbol list of liboxide.so: one "name kind" line per symbol
# (kind as nm prints it: T function, D/B/R data), sorted.
#   check.sh <liboxide.so>              prints the list (make abi-list)
#   check.sh <liboxide.so> <committed>  compares it with the committed list
#                                       (make check, the abi suite of make test)
# Also checks that every public header declares its API between
# OX__API_BEGIN and OX__API_END (oxide/base.h): a header without them would
# have its functions hidden by -fvisibility=hidden.
set -u
so=$1
list() {
    nm -D --defined-only -P "$so" | awk '$1 != "OXIDE_0" { sub(/@.*/, "", $1); print $1, $2 }' |
        LC_ALL=C sort
}
if [ $# -eq 1 ]; then
    list
    exit
fi
ok=1
for h in include/oxide/*.h; do
    if grep -q 'extern "C"' "$h" && ! grep -q '^OX__API_BEGIN' "$h"; then
        echo "abi: $h has an extern \"C\" block but no OX__API_BEGIN/OX__API_END:" \
            "its functions would not be exported"
        ok=0
    fi
done
if ! list | diff -u "$2" - >/dev/null; then
    echo "abi: the symbols liboxide.so exports differ from $2 (- committed, + built):"
    list | diff -u "$2" - | tail -n +3
    echo "abi: if the change is intended (a public function added or removed), run" \
        "'make abi-list' and commit $2 with it; else a name escaped (make it static or" \
        "declare it in an internal header) or a public header lost its declaration"
    ok=0
fi
if [ $ok = 1 ]; then
    echo "ok   abi:exported-symbols ($(list | wc -l) symbols)"
    echo "1 passed, 0 failed"
else
    echo "FAIL abi:exported-symbols"
    echo "0 passed, 1 failed"
    exit 1
fi
