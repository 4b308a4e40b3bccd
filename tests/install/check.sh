#!/bin/sh
# The install suite of make test: make install into a fresh prefix with a
# multiarch LIBDIR (lib/x86_64-linux-gnu, as Debian's), then build
# tests/install/hello.c against it every way a user would: pkg-config
# (shared and static; with tests/install/lock_order.c, that OX_LOCKDEP
# alone switches the checker on in both), CMake's find_package(oxide CONFIG) (oxide::oxide and
# oxide::oxide_static) and CMake's pkg_check_modules. Also checks the
# SONAME links, the version pkg-config reports, a DESTDIR staging install
# and that make uninstall removes every file. Prints "ok   install:<name>"
# or "FAIL ..." per check and a closing line "N passed, N failed".
set -u
MAKE=${MAKE:-make}
JOBS=${JOBS:-2}
CC=${CC:-cc}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
arch=$($CC -print-multiarch 2>/dev/null)
libdir=$prefix/lib${arch:+/$arch}
expect="hello from thread 'installed', result 42"
part() { sed -n "s/^#define OX_VERSION_$1 \\([0-9]*\\)\$/\\1/p" include/oxide/version.h; }
major=$(part MAJOR)
version=$major.$(part MINOR).$(part PATCH)

result() { # name, status (0: ok), what went wrong
    if [ "$2" = 0 ]; then
        echo "ok   install:$1"
        passed=$((passed + 1))
    else
        echo "FAIL install:$1${3:+ ($3)}"
        failed=$((failed + 1))
    fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
runs() { # program [LD_LIBRARY_PATH]: prints the expected line?
    out=$(LD_LIBRARY_PATH=${2:-} "$1" 2>&1)
    [ "$out" = "$expect" ] || { echo "$1 printed: $out"; return 1; }
}

if ! $MAKE -s -j"$JOBS" install PREFIX="$prefix" LIBDIR="$libdir" >"$tmp/log" 2>&1; then
    cat "$tmp/log"
    result make-install 1
    finish
fi
result make-install 0

# liboxide.so -> liboxide.so.MAJOR (the SONAME) -> liboxide.so.VERSION
[ "$(readlink "$libdir/liboxide.so")" = "liboxide.so.$major" ] &&
    [ "$(readlink "$libdir/liboxide.so.$major")" = "liboxide.so.$version" ] &&
    readelf -d "$libdir/liboxide.so.$version" | grep -q "SONAME.*\\[liboxide.so.$major\\]"
result soname-links $? "liboxide.so.$major"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion oxide)" = "$version" ]
result pkg-config-version $? "want $version"
for how in shared static; do
    if [ $how = shared ]; then
        flags=$(pkg-config --cflags --libs oxide)
    else
        flags="$(pkg-config --cflags oxide) $libdir/liboxide.a -pthread"
    fi
    $CC -std=c11 -Wall -Werror tests/install/hello.c $flags -o "$tmp/hello-$how" &&
        runs "$tmp/hello-$how" "$libdir"
    result pkg-config-$how $?
    # The checker is switched on by OX_LOCKDEP alone, in a program that
    # calls none of its functions: linked in also statically.
    $CC -std=c11 -Wall -Werror tests/install/lock_order.c $flags -o "$tmp/lock-order-$how" &&
        LD_LIBRARY_PATH=$libdir OX_LOCKDEP=1 "$tmp/lock-order-$how" >"$tmp/out" 2>&1 &&
        grep -q "oxide lockdep: possible deadlock" "$tmp/out"
    result lockdep-from-env-$how $? "$(cat "$tmp/out" 2>/dev/null)"
done

# CMake: the package config; the build tree's RPATH finds the library.
if command -v cmake >/dev/null 2>&1; then
    cmake -S tests/cmake -B "$tmp/cmake-config" -DCMAKE_C_COMPILER="$CC" \
        -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/log" 2>&1 &&
        cmake --build "$tmp/cmake-config" >>"$tmp/log" 2>&1 ||
        cat "$tmp/log"
    for how in shared static; do
        runs "$tmp/cmake-config/hello_$how"
        result cmake-find-package-$how $?
    done
    cmake -S tests/cmake -B "$tmp/cmake-pc" -DCMAKE_C_COMPILER="$CC" -DOXIDE_VIA_PKG_CONFIG=ON \
        >"$tmp/log" 2>&1 && cmake --build "$tmp/cmake-pc" >>"$tmp/log" 2>&1 || cat "$tmp/log"
    runs "$tmp/cmake-pc/hello_shared" "$libdir"
    result cmake-pkg-check-modules $?
else
    result cmake 1 "cmake is not installed (see tests/packages.txt)"
fi

# A staged install (DESTDIR) names the final paths, not the staging root.
stage=$tmp/stage
$MAKE -s install DESTDIR="$stage" PREFIX=/usr LIBDIR=/usr/lib${arch:+/$arch} >"$tmp/log" 2>&1 &&
    [ -f "$stage/usr/lib${arch:+/$arch}/liboxide.so.$version" ] &&
    [ -f "$stage/usr/include/oxide.h" ] &&
    grep -qx "libdir=/usr/lib${arch:+/$arch}" "$stage/usr/lib${arch:+/$arch}/pkgconfig/oxide.pc" &&
    grep -q "\"/usr/lib${arch:+/$arch}/liboxide.so.$version\"" \
        "$stage/usr/lib${arch:+/$arch}/cmake/oxide/oxideConfig.cmake"
result destdir $? "see $stage"

$MAKE -s uninstall PREFIX="$prefix" LIBDIR="$libdir" >"$tmp/log" 2>&1
left=$(find "$prefix" ! -type d)
[ -z "$left" ]
result uninstall $? "left: $left"
finish
