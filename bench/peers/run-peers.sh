#!/bin/sh
# run-peers.sh [SUBSTRING] - builds and runs the peer benchmarks (the same
# workloads as oxide's, bench/WORKLOADS.md) for every peer whose toolchain
# or library is installed, printing workload<TAB>impl<TAB>ns_per_op.
#
# Peers: pthread, c-thread-local (cc), glib (pkg-config glib-2.0),
# rust-std/parking_lot/parking_lot-dd/crossbeam/flume/tokio (cargo + Debian's crate sources),
# go (go). A peer that is not installed is skipped with a line on stderr
# saying what to install; one that fails to build or run is reported on
# stderr and the others still run. Exit status: 0 when every peer that is
# present built and ran, 1 otherwise.
#
# Environment: BENCH (filter when no argument is given), OX_BENCH_ROUNDS,
# OX_PEERS_LIST (see run() below),
# B (build directory, default build), CC (default cc), CARGO (default
# ~/.cargo/bin/cargo, else cargo on PATH), GO (default go).
# Packages: bench/peers/packages.txt; details in bench/peers/README.md.

filter=${1:-${BENCH:-}}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-build}
case $B in
/*) out=$B/bench/peers ;;
*) out=$root/$B/bench/peers ;;
esac
mkdir -p "$out" || exit 1
status=0

skip() { # peer, reason
    echo "# skipped $1: $2" >&2
}

fail() { # peer, reason, [log file]
    echo "# failed $1: $2" >&2
    if [ -n "${3:-}" ] && [ -s "$3" ]; then
        tail -n 20 "$3" | sed 's/^/#   /' >&2
    fi
    status=1
}

# With OX_PEERS_LIST (a file, set by bench/run.sh) a built peer is only
# listed there as "name<TAB>binary<TAB>implementation": run.sh then runs
# every implementation of a workload back to back, each in a fresh process,
# so that all meet the same machine and none inherits another's heap.
# Otherwise the peer runs here on the filter. The implementation (empty for
# a binary with one) is passed as OX_BENCH_IMPL, which the Rust peers use to
# run one implementation only.
run() { # peer, binary, [implementation]
    if [ -n "${OX_PEERS_LIST:-}" ]; then
        printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$OX_PEERS_LIST"
    else
        OX_BENCH_IMPL=${3:-} "$2" "$filter" || fail "$1" "$2 exited with status $?"
    fi
}

# ---- C peers: pthread, c-thread-local, glib ----------------------------------

CC=${CC:-cc}
# -falign-loops=64 as for oxide's benchmarks (the Makefile says why).
cflags="-O2 -falign-loops=64 -pthread -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -I$root/bench -I$here/c"
if ! command -v "$CC" >/dev/null 2>&1; then
    skip pthread "$CC not found (apt-get install gcc)"
    skip c-thread-local "$CC not found (apt-get install gcc)"
    skip glib "$CC not found (apt-get install gcc)"
else
    # cc_peer NAME SOURCE [extra flags...]: build $out/NAME-bench, run it.
    cc_peer() {
        name=$1 src=$2
        shift 2
        # shellcheck disable=SC2086 # cflags is a word list
        if $CC $cflags "$root/bench/harness.c" "$here/c/$src" "$@" \
            -o "$out/$name-bench" >"$out/$name.log" 2>&1; then
            run "$name" "$out/$name-bench"
        else
            fail "$name" "build failed ($out/$name.log)" "$out/$name.log"
        fi
    }
    cc_peer pthread pthread.c
    cc_peer c-thread-local thread_local.c
    if ! command -v pkg-config >/dev/null 2>&1; then
        skip glib "pkg-config not found (apt-get install pkg-config libglib2.0-dev)"
    elif ! pkg-config --exists glib-2.0; then
        skip glib "glib-2.0 not found by pkg-config (apt-get install libglib2.0-dev)"
    else
        # shellcheck disable=SC2046 # pkg-config prints word lists
        cc_peer glib glib.c $(pkg-config --cflags --libs glib-2.0)
    fi
fi

# ---- Rust peers: rust-std, parking_lot, crossbeam, flume, tokio -------------

rust_peers="rust-std, parking_lot, crossbeam, flume, tokio"
registry=/usr/share/cargo/registry
if [ -z "${CARGO:-}" ]; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        CARGO=$HOME/.cargo/bin/cargo
    else
        CARGO=$(command -v cargo 2>/dev/null || true)
    fi
fi
missing=
for crate in crossbeam-channel-0.5.6 flume-0.10.14 parking_lot-0.12.1 tokio-1.24.2; do
    [ -d "$registry/$crate" ] || missing="$missing $crate"
done
# parking_lot-dd: parking_lot built with its deadlock_detection feature, so
# that it keeps a per-thread list of the locks each thread holds - its own
# counterpart of oxide's held-lock record, which a plain parking_lot does
# without. It runs the lock workloads only. Debian's parking_lot_core 0.9.3
# leaves the feature's backtrace dependency out but not the code that uses
# it, so a copy of the crate is pointed at std's Backtrace (taken only for a
# deadlock report, never on a measured path) and patched in, in a copy of
# the peers' crate: the one in the source tree and its Cargo.lock stay as
# they are.
rust_peer_dd() {
    core=$registry/parking_lot_core-0.9.3
    if [ ! -d "$registry/petgraph-0.6.2" ] || [ ! -d "$registry/thread-id-4.0.0" ]; then
        skip parking_lot-dd "apt-get install librust-parking-lot-core+deadlock-detection-dev"
        return
    fi
    dd=$out/rust-dd
    # Its target directory stays, and the copies keep their sources' times
    # (cp -p), so that cargo rebuilds only what changed since the last run.
    if ! {
        rm -rf "$dd/src" "$dd/parking_lot_core" && mkdir -p "$dd" &&
            cp -pR "$here/rust/Cargo.toml" "$here/rust/Cargo.lock" "$here/rust/src" \
                "$here/rust/.cargo" "$dd/" &&
            cp -pR "$core" "$dd/parking_lot_core" &&
            rm -f "$dd/parking_lot_core/.cargo-checksum.json" &&
            sed -i -e 's/use backtrace::Backtrace;/use std::backtrace::Backtrace;/' \
                -e 's/Backtrace::new()/Backtrace::force_capture()/' \
                "$dd/parking_lot_core/src/parking_lot.rs" &&
            printf '\n[patch.crates-io]\nparking_lot_core = { path = "parking_lot_core" }\n' \
                >>"$dd/Cargo.toml" &&
            touch -r "$core/src/parking_lot.rs" "$dd/parking_lot_core/src/parking_lot.rs" &&
            touch -r "$here/rust/Cargo.toml" "$dd/Cargo.toml"
    }; then
        fail parking_lot-dd "could not copy the crates into $dd"
        return
    fi
    if (cd "$dd" && PATH=$(dirname "$CARGO"):$PATH CARGO_TARGET_DIR="$dd/target" \
        "$CARGO" build --release --offline --quiet --features deadlock_detection) >"$out/rust-dd.log" 2>&1; then
        run parking_lot-dd "$dd/target/release/oxide-peers" parking_lot-dd
    else
        fail parking_lot-dd "cargo build failed ($out/rust-dd.log)" "$out/rust-dd.log"
    fi
}

if [ -z "$CARGO" ] || [ ! -x "$CARGO" ]; then
    skip "$rust_peers" "cargo not found (install a Rust toolchain, or apt-get install cargo)"
elif [ -n "$missing" ]; then
    skip "$rust_peers" "crate sources missing under $registry:$missing (apt-get install librust-crossbeam-channel-dev librust-flume-dev librust-parking-lot-dev librust-tokio-dev)"
else
    # The offline crate source: Debian's packaged sources replace crates.io.
    # Written here (gitignored) so no user-wide cargo config is touched.
    mkdir -p "$here/rust/.cargo"
    cat >"$here/rust/.cargo/config.toml" <<EOF
# Written by bench/peers/run-peers.sh: crates come from Debian's packages.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"
EOF
    # rustc from the same toolchain as cargo (rustup proxies or a plain install).
    if (cd "$here/rust" && PATH=$(dirname "$CARGO"):$PATH CARGO_TARGET_DIR="$out/rust" \
        "$CARGO" build --release --offline --quiet) >"$out/rust.log" 2>&1; then
        for imp in rust-std parking_lot crossbeam flume tokio; do
            run "$imp" "$out/rust/release/oxide-peers" "$imp"
        done
        rust_peer_dd
    else
        fail "$rust_peers" "cargo build failed ($out/rust.log)" "$out/rust.log"
    fi
fi

# ---- Go ----------------------------------------------------------------------

GO=${GO:-go}
if ! command -v "$GO" >/dev/null 2>&1; then
    skip go "go not found (apt-get install golang-go)"
else
    # No external modules: GOPROXY=off makes sure nothing is fetched.
    if (cd "$here/go" && GOCACHE="$out/gocache" GOPATH="$out/gopath" GOPROXY=off \
        GOFLAGS='' GOTOOLCHAIN=local "$GO" build -o "$out/go-bench" .) >"$out/go.log" 2>&1; then
        run go "$out/go-bench"
    else
        fail go "go build failed ($out/go.log)" "$out/go.log"
    fi
fi

exit $status
