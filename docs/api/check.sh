#!/bin/sh
# make docs: the API reference (HTML and man pages) in build/docs/, built by
# Doxygen from the public headers (docs/api/Doxyfile). Fails on any Doxygen
# warning, and on a public name without documentation unless it is one of
# the names listed in docs/api/undocumented.txt (the known debt, which only
# shrinks: document a name where it is declared and delete its line there).
#   check.sh          build and check
#   check.sh --list   print the undocumented names (to rewrite the list)
set -u
out=build/docs
rm -rf "$out"
mkdir -p "$out"
if ! command -v doxygen >/dev/null 2>&1; then
    echo "docs: doxygen is not installed (see tests/packages.txt)"
    exit 1
fi
doxygen docs/api/Doxyfile || exit 1
here=$(pwd)/
undocumented() { # "file: name" per undocumented public name
    sed -n -e "s|^$here||" \
        -e 's|^\([^:]*\):[0-9]*: warning: Compound \([^ ]*\) is not documented.*|\1: \2|p' \
        -e 's|^\([^:]*\):[0-9]*: warning: Member \([A-Za-z0-9_]*\).* of file .* is not documented.*|\1: \2|p' \
        -e 's|^\([^:]*\):[0-9]*: warning: Member \([^ ]*\) (variable) of struct \([^ ]*\) is not documented.*|\1: \3.\2|p' \
        "$out/warnings.txt" | LC_ALL=C sort -u
}
if [ "${1:-}" = --list ]; then
    undocumented
    exit
fi
ok=1
other=$(grep -v 'is not documented' "$out/warnings.txt")
if [ -n "$other" ]; then
    echo "$other"
    ok=0
fi
new=$(undocumented | LC_ALL=C comm -23 - docs/api/undocumented.txt)
if [ -n "$new" ]; then
    echo "docs: public names without documentation (document each where it is declared):"
    echo "$new" | sed 's/^/  /'
    ok=0
fi
gone=$(undocumented | LC_ALL=C comm -13 - docs/api/undocumented.txt)
if [ -n "$gone" ]; then
    echo "docs: documented now, delete from docs/api/undocumented.txt:"
    echo "$gone" | sed 's/^/  /'
fi
[ $ok = 1 ] || { echo "FAIL docs"; exit 1; }
echo "ok   docs: $out/html/index.html, $out/man/man3/ ($(undocumented | wc -l) names still listed as undocumented)"
