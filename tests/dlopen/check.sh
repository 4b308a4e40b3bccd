#!/bin/sh
# The dlopen suite of make test: the default liboxide.so uses static
# (initial-exec) TLS, which the loader marks STATIC_TLS; the DLOPEN_SAFE=1
# build does not, and a plugin using the inline fast paths, linked with
# it, can be dlopen'ed after start-up (base.h: OX__TLS_FAST). Prints
# "ok   dlopen:<name>" or "FAIL ..." and a closing line "N passed, N failed".
set -u
MAKE=${MAKE:-make}
JOBS=${JOBS:-2}
CC=${CC:-cc}
passed=0
failed=0
result() {
    if [ "$2" = 0 ]; then
        echo "ok   dlopen:$1"
        passed=$((passed + 1))
    else
        echo "FAIL dlopen:$1${3:+ ($3)}"
        failed=$((failed + 1))
    fi
}
out=build/dlopen-test
mkdir -p "$out"
if $MAKE -s -j"$JOBS" lib >"$out/log" 2>&1 && $MAKE -s -j"$JOBS" DLOPEN_SAFE=1 lib >>"$out/log" 2>&1
then
    readelf -d build/liboxide.so | grep -q 'FLAGS.*STATIC_TLS'
    result default-is-static-tls $?
    ! readelf -d build-dlopen/liboxide.so | grep -q 'FLAGS.*STATIC_TLS'
    result dlopen-safe-has-no-static-tls $?
    ln -sf "$(pwd)/build-dlopen/liboxide.so" "$out/liboxide.so.0"
    $CC -std=c11 -Wall -Werror -Iinclude -DOX_DLOPEN_SAFE -shared -fPIC tests/dlopen/plugin.c \
        -L"$out" -l:liboxide.so.0 -Wl,-rpath,"$(pwd)/$out" -pthread -o "$out/plugin.so" &&
        $CC -std=c11 -Wall -Werror tests/dlopen/host.c -ldl -o "$out/host" &&
        msg=$("$out/host" "$(pwd)/$out/plugin.so")
    result dlopen-safe-plugin-loads $? "${msg:-}"
else
    cat "$out/log"
    result build 1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
