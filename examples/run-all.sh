#!/bin/sh
# Runs every example program of a build, in order, with a header for each.
# Usage: examples/run-all.sh BUILD_DIR/examples
dir=${1:-build/examples}
status=0
for prog in "$dir"/*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    printf '\n===== %s =====\n' "$name"
    "$prog"
    rc=$?
    # Some examples end the way the guide's do on purpose: say so.
    [ $rc -ne 0 ] && printf '(%s exited with status %d)\n' "$name" "$rc"
done
exit $status
