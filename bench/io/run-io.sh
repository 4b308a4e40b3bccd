#!/bin/sh
# run-io.sh [SUBSTRING] - the I/O benchmarks (bench/WORKLOADS.md, "I/O").
# Builds the load generator and every server whose toolchain or library is
# installed, then runs each workload against each server: start it, load
# it, stop it. Prints workload<TAB>impl<TAB>value, each the median of the
# rounds; the rounds take turns over the servers, as bench/run.sh does.
# `run-io.sh --list` prints the line names.
#
#   echo100  bench/io/loadgen, 100 connections    io_echo100_{ns_per_rt,
#   echo10k  bench/io/loadgen, 10 000 connections   cpu_ns_per_rt,p99_ns,bytes}
#   http     wrk -t2 -c100 --latency              io_http_{ns_per_req,
#                                                   cpu_ns_per_req,p99_ns}
#
# Servers: oxide (OX_IO_OXIDE, default $B/bench/oxide-io-server, run as
# `oxide-io-server echo|http PORT`, when it exists), epoll, uring,
# uring-poll (pkg-config, liburing-dev, a kernel that allows io_uring), libuv,
# libuv-2loops (cc, libuv1-dev), tokio (cargo and Debian's tokio sources),
# go (go), nginx (http only). Each run starts a fresh server on its own
# port; it must print a line "ready" on stdout within 10 s (nginx: accept
# a connection). It is stopped (SIGTERM, then waited for) after its run,
# and on any exit of this script. A server that is not installed is
# skipped with a note on stderr; one that fails is reported and the
# others still run. Exit status: 1 when anything present failed.
#
# Environment: BENCH (the filter when there is no argument), OX_IO_ROUNDS
# (default 3), OX_IO_SECS (measured seconds per run, default 4, after 1 s
# of warm-up), OX_IO_PORT (first port, default 29100; up to 200 are used),
# B (build directory), CC, CARGO, GO, WRK, NGINX.

names="io_echo100_ns_per_rt io_echo100_cpu_ns_per_rt io_echo100_p99_ns io_echo100_bytes
io_echo10k_ns_per_rt io_echo10k_cpu_ns_per_rt io_echo10k_p99_ns io_echo10k_bytes
io_http_ns_per_req io_http_cpu_ns_per_req io_http_p99_ns"
if [ "${1:-}" = --list ]; then
    # shellcheck disable=SC2086 # one name a line
    printf '%s\n' $names
    exit 0
fi
filter=${1:-${BENCH:-}}
# wanted GROUP: does any line of the group match the filter?
wanted() {
    # shellcheck disable=SC2086 # one name a line
    printf '%s\n' $names | grep "^io_$1_" | grep -qF -- "$filter"
}
groups=
for g in echo100 echo10k http; do
    wanted $g && groups="$groups $g"
done
[ -n "$groups" ] || exit 0

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-build}
case $B in
/*) ;;
*) B=$root/$B ;;
esac
out=$B/bench/io
mkdir -p "$out" || exit 1
rounds=${OX_IO_ROUNDS:-3}
secs=${OX_IO_SECS:-4}
port0=${OX_IO_PORT:-29100}
oxide=${OX_IO_OXIDE:-$B/bench/oxide-io-server}
status=0
tmp=$(mktemp -d) || exit 1
server= # the pid of the running server, if any
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi; rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

skip() { # impl, reason
    echo "# skipped $1: $2" >&2
}

fail() { # impl, reason, [log file]
    echo "# failed $1: $2" >&2
    if [ -n "${3:-}" ] && [ -s "$3" ]; then
        tail -n 20 "$3" | sed 's/^/#   /' >&2
    fi
    status=1
}

# ---- build ---------------------------------------------------------------------

impls= # the servers that are present, in the order they run
CC=${CC:-cc}
cflags="-O2 -pthread -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra"
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "# skipped the I/O benchmarks: $CC not found (apt-get install gcc)" >&2
    exit 0
fi
# shellcheck disable=SC2086 # cflags is a word list
if ! $CC $cflags "$here/loadgen.c" -o "$out/loadgen" >"$out/loadgen.log" 2>&1; then
    fail loadgen "build failed ($out/loadgen.log)" "$out/loadgen.log"
    exit 1
fi

if [ -x "$oxide" ]; then
    impls="$impls oxide"
else
    skip oxide "$oxide not built (bench/io/README.md says what it must do)"
fi

# shellcheck disable=SC2086
if $CC $cflags "$here/echo_epoll.c" -o "$out/echo-epoll" >"$out/epoll.log" 2>&1; then
    impls="$impls epoll"
else
    fail epoll "build failed ($out/epoll.log)" "$out/epoll.log"
fi

if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libuv; then
    skip "libuv, libuv-2loops" "libuv not found by pkg-config (apt-get install pkg-config libuv1-dev)"
else
    # shellcheck disable=SC2046,SC2086 # word lists
    if $CC $cflags "$here/echo_uv.c" $(pkg-config --cflags --libs libuv) -o "$out/echo-uv" \
        >"$out/libuv.log" 2>&1; then
        impls="$impls libuv libuv-2loops"
    else
        fail libuv "build failed ($out/libuv.log)" "$out/libuv.log"
    fi
fi

# io_uring: the floor again on io_uring (completions, and readiness with
# system calls), to learn whether it would pay for oxide's reactor. The
# probe asks the kernel for a ring with a buffer ring: io_uring may be
# missing or refused (kernel.io_uring_disabled, a seccomp filter).
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists liburing; then
    skip "uring, uring-poll" "liburing not found by pkg-config (apt-get install pkg-config liburing-dev)"
else
    # shellcheck disable=SC2046,SC2086 # word lists
    if ! $CC $cflags "$here/echo_uring.c" $(pkg-config --cflags --libs liburing) \
        -o "$out/echo-uring" >"$out/uring.log" 2>&1; then
        fail uring "build failed ($out/uring.log)" "$out/uring.log"
    elif ! "$out/echo-uring" probe >"$out/uring.log" 2>&1; then
        skip "uring, uring-poll" "the kernel refuses io_uring ($(tail -n 1 "$out/uring.log"))"
    else
        impls="$impls uring uring-poll"
    fi
fi

# Tokio: as bench/peers/run-peers.sh builds the Rust peers, offline from
# Debian's crate sources, in a crate of its own (bench/peers/rust-io).
registry=/usr/share/cargo/registry
if [ -z "${CARGO:-}" ]; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        CARGO=$HOME/.cargo/bin/cargo
    else
        CARGO=$(command -v cargo 2>/dev/null || true)
    fi
fi
rust=$root/bench/peers/rust-io
if [ -z "$CARGO" ] || [ ! -x "$CARGO" ]; then
    skip tokio "cargo not found (install a Rust toolchain, or apt-get install cargo)"
elif [ ! -d "$registry/tokio-1.24.2" ]; then
    skip tokio "tokio-1.24.2 missing under $registry (apt-get install librust-tokio-dev)"
else
    mkdir -p "$rust/.cargo"
    cat >"$rust/.cargo/config.toml" <<EOF
# Written by bench/io/run-io.sh: crates come from Debian's packages.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"
EOF
    if (cd "$rust" && PATH=$(dirname "$CARGO"):$PATH CARGO_TARGET_DIR="$B/bench/peers/rust-io" \
        "$CARGO" build --release --offline --quiet) >"$out/tokio.log" 2>&1; then
        impls="$impls tokio"
    else
        fail tokio "cargo build failed ($out/tokio.log)" "$out/tokio.log"
    fi
fi

GO=${GO:-go}
if ! command -v "$GO" >/dev/null 2>&1; then
    skip go "go not found (apt-get install golang-go)"
elif (cd "$root/bench/peers/go" && GOCACHE="$B/bench/peers/gocache" GOPATH="$B/bench/peers/gopath" \
    GOPROXY=off GOFLAGS='' GOTOOLCHAIN=local "$GO" build -o "$out/go-io-server" ./ioserver) \
    >"$out/go.log" 2>&1; then
    impls="$impls go"
else
    fail go "go build failed ($out/go.log)" "$out/go.log"
fi

WRK=${WRK:-wrk}
NGINX=${NGINX:-$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)}
case $groups in
*http*)
    if ! command -v "$WRK" >/dev/null 2>&1; then
        skip io_http "wrk not found (apt-get install wrk)"
        groups=$(echo "$groups" | sed 's/ http//')
    elif [ -x "$NGINX" ]; then
        impls="$impls nginx"
    else
        skip nginx "nginx not found (apt-get install nginx-light)"
    fi
    ;;
esac

# 10 000 connections need more descriptors than the usual soft limit of
# 1024, in the servers (started from here) and in loadgen (which raises
# its own). `ulimit -n` is not POSIX, but dash and bash have it.
# shellcheck disable=SC3045
case $groups in
*echo10k*)
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
        if ulimit -n 10100 2>/dev/null; then
            echo "# io_echo10k: RLIMIT_NOFILE raised to 10100 for the servers" >&2
        else
            echo "# io_echo10k: RLIMIT_NOFILE is $(ulimit -n) and cannot be raised: it will fail" >&2
        fi
    fi
    ;;
esac

# ---- servers -------------------------------------------------------------------

serves() { # impl, group: does the server take part in the workload?
    case $1:$2 in
    oxide:* | tokio:* | go:*) return 0 ;;
    nginx:http) return 0 ;;
    nginx:*) return 1 ;;
    *:http) return 1 ;; # the echo-only peers
    *) return 0 ;;
    esac
}

runs=0
# start IMPL MODE: starts the server on a fresh port; sets $server and
# $port. Returns 1 (the server killed) if it is not ready within 10 s.
start() {
    port=$((port0 + runs % 200))
    runs=$((runs + 1))
    log=$tmp/server.log
    # Emptied here, not only by the server's redirection, which happens in
    # the child at some point after the fork: the wait below must not find
    # the previous server's "ready".
    : >"$log"
    case $1 in
    oxide) "$oxide" "$2" "$port" >"$log" 2>&1 & ;;
    epoll) "$out/echo-epoll" "$port" >"$log" 2>&1 & ;;
    uring) "$out/echo-uring" "$port" >"$log" 2>&1 & ;;
    uring-poll) "$out/echo-uring" "$port" poll >"$log" 2>&1 & ;;
    libuv) "$out/echo-uv" "$port" 1 >"$log" 2>&1 & ;;
    libuv-2loops) "$out/echo-uv" "$port" 2 >"$log" 2>&1 & ;;
    tokio) "$B/bench/peers/rust-io/release/oxide-io-peers" "$2" "$port" >"$log" 2>&1 & ;;
    go) "$out/go-io-server" "$2" "$port" >"$log" 2>&1 & ;;
    nginx)
        d=$out/nginx
        mkdir -p "$d"
        sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$d|g" "$here/nginx.conf" >"$d/nginx.conf"
        "$NGINX" -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" >"$log" 2>&1 &
        ;;
    esac
    server=$!
    if [ "$1" = nginx ]; then
        "$out/loadgen" wait "$port" 2>>"$log" && return 0
    else
        i=0
        while [ $i -lt 100 ] && kill -0 "$server" 2>/dev/null; do
            grep -q '^ready' "$log" && return 0
            sleep 0.1
            i=$((i + 1))
        done
    fi
    stop
    return 1
}

stop() {
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    server=
}

# load GROUP IMPL: runs the workload against the server on $port, appends
# its lines to $tmp/samples.
load() {
    case $1 in
    echo100 | echo10k)
        conns=100
        [ "$1" = echo10k ] && conns=10000
        "$out/loadgen" echo -n "$1" -i "$2" -p "$port" -c $conns -d "$secs" -w 1 -s "$server" \
            >>"$tmp/samples" 2>"$tmp/load.log"
        ;;
    http)
        url=http://127.0.0.1:$port/
        "$WRK" -t2 -c100 -d1s "$url" >/dev/null 2>"$tmp/load.log" &&
            cpu0=$("$out/loadgen" cpu "$server") &&
            "$WRK" -t2 -c100 -d"${secs}s" --latency "$url" >"$tmp/wrk.out" 2>"$tmp/load.log" &&
            cpu1=$("$out/loadgen" cpu "$server") || return 1
        # Requests/sec, the 99% line of the latency distribution (us, ms
        # or s), and "N requests in": no line at all when wrk saw errors.
        awk -v impl="$2" -v cpu=$((cpu1 - cpu0)) '
            function ns(v) {
                if (sub(/us$/, "", v)) return v * 1e3
                if (sub(/ms$/, "", v)) return v * 1e6
                if (sub(/s$/, "", v)) return v * 1e9
                return -1
            }
            /^ +99%/ { p99 = ns($2) }
            / requests in / { reqs = $1 }
            /^Requests\/sec:/ { rps = $2 }
            /Socket errors|Non-2xx/ { print "wrk: " $0 > "/dev/stderr"; bad = 1 }
            END {
                if (bad || reqs <= 0 || rps <= 0 || p99 < 0) exit 1
                printf "io_http_ns_per_req\t%s\t%.1f\n", impl, 1e9 / rps
                printf "io_http_cpu_ns_per_req\t%s\t%.1f\n", impl, cpu / reqs
                printf "io_http_p99_ns\t%s\t%.0f\n", impl, p99
            }' "$tmp/wrk.out" >>"$tmp/samples" 2>"$tmp/load.log"
        ;;
    esac
}

# ---- the runs ------------------------------------------------------------------

: >"$tmp/samples"
: >"$tmp/notes"
r=0
while [ $r -lt "$rounds" ]; do
    for g in $groups; do
        for impl in $impls; do
            serves "$impl" "$g" || continue
            mode="echo"
            [ "$g" = http ] && mode="http"
            if ! start "$impl" $mode; then
                echo "# failed $impl io_$g: the server was not ready in 10 s" >>"$tmp/notes"
                tail -n 5 "$tmp/server.log" | sed 's/^/#   /' >>"$tmp/notes"
                status=1
                continue
            fi
            if ! load "$g" "$impl"; then
                {
                    echo "# failed $impl io_$g (round $((r + 1)), port $port)"
                    tail -n 5 "$tmp/load.log" | sed 's/^/#   /'
                    tail -n 5 "$tmp/server.log" | sed 's/^/#   server: /'
                } >>"$tmp/notes"
                status=1
            fi
            kill -0 "$server" 2>/dev/null || {
                echo "# failed $impl io_$g: the server died" >>"$tmp/notes"
                status=1
            }
            stop
        done
    done
    r=$((r + 1))
done

# Per line, in the order of $names, and per implementation in the order
# they ran: the median (the upper one of an even count, as bench/run.sh).
awk -F '\t' -v names="$names" -v filter="$filter" '
    NF == 3 {
        if (!($2 in seen)) { seen[$2] = 1; order[k++] = $2 }
        v[$1, $2, n[$1, $2]++] = $3
    }
    END {
        split(names, name, /[ \n]+/)
        for (j = 1; j in name; j++) {
            if (filter != "" && index(name[j], filter) == 0) continue
            for (i = 0; i < k; i++) {
                key = name[j] SUBSEP order[i]
                if (!(key in n)) continue
                c = n[key]
                for (a = 0; a < c; a++) s[a] = v[name[j], order[i], a] + 0
                for (a = 1; a < c; a++)
                    for (b = a; b > 0 && s[b - 1] > s[b]; b--) { t = s[b]; s[b] = s[b - 1]; s[b - 1] = t }
                printf "%s\t%s\t%.1f\n", name[j], order[i], s[int(c / 2)]
            }
        }
    }' "$tmp/samples"
awk '!seen[$0]++' "$tmp/notes" >&2
exit $status
