#!/bin/sh
# Runs every example program of a build, in order, with a header for each.
# Exits 1 if any example exits with a status other than 0 (every example
# ends normally: those that show a panic catch it or join it), or if there
# is no example to run.
# Usage: examples/run-all.sh BUILD_DIR/examples
dir=${1:-build/examples}
status=0
ran=0
for prog in "$dir"/*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    printf '\n===== %s =====\n' "$name"
    "$prog"
    rc=$?
    ran=$((ran + 1))
    if [ $rc -ne 0 ]; then
        printf 'FAIL: %s exited with status %d\n' "$name" "$rc"
        status=1
    fi
done
if [ $ran -eq 0 ]; then
    echo "run-all: no example programs in $dir" >&2
    status=1
fi
exit $status
