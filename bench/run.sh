#!/usr/bin/env bash
# `make bench`: every figure the project tracks, in one run, summed up in one table.
#
#   1. launch    bench/launch.sh: lasagna strict vs bwrap (same mounts) vs unshare -Upmniuf -r,
#                hyperfine median/p90, ratio to bwrap, CPU per launch (perf task-clock).
#   2. syscost   bench/syscost.c (built here with $CC) run on the host and inside lasagna with
#                the strict profile, seccomp and Landlock each on or off: ns per getppid
#                (allow-listed), ioctl FIONREAD, clone and socket failing EINVAL, socket+close
#                (argument-checked) and open+close (Landlock). The same binary in the same sandbox, so the
#                difference between two columns is the cost of one layer.
#   3. unit      the ignored benchmark tests: bench_figures (seccomp: profile load + BPF
#                compile time, filter install time, in-process ns/call) and bench_open_close
#                (Landlock with 1, 10, 100 rules).
#   5. battery   `lasagna test strict --json`: the whole leave-one-out matrix, its wall time
#                (target: at most 30 s on a 2-core machine) and how many probes get through.
#   6. network   bench/network.sh: launch median per network mode (none, proxy, user, host)
#                against none and bwrap; the proxy's CONNECT throughput on loopback against a
#                direct connection, and the time to first byte it adds.
#   4. cgroups   launch latency of strict + cgroups (memory.max 256M, pids.max 256) against
#                the same profile --without cgroups, hyperfine median and p90 (RUNS each, in
#                two rounds of opposite order).
# Then bench/summary.py prints one table, figure against target, to stdout and
# target/bench/summary.txt. A part the machine cannot run is skipped with a message on
# stderr and a line in target/bench/skipped.txt, and the summary lists it.
#
# Outputs (target/bench/): launch.json, interleave.txt, perf-*.txt, launch.txt; syscost-<config>-<round>.txt;
# unit-seccomp-<n>.txt, unit-landlock.txt; cgroups-1.json, cgroups-2.json; profiles/ (the
# temporary profiles); bin/syscost; loadavg-start.txt; skipped.txt; summary.txt.
#
# Environment: LASAGNA (default: what `make build` makes), CARGO (cargo), CC (cc),
# RUNS (hyperfine runs per command, default 200), WARMUP (20), SYSCOST_ROUNDS (rounds of
# the syscost configs, interleaved, best kept; default 2), UNIT_RUNS (runs of bench_figures,
# median kept; default 3), PARTS (which parts to run, default "launch syscost unit cgroups battery network").
set -uo pipefail

cd "$(dirname "$0")/.."
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
export LASAGNA=${LASAGNA:-target/$host/release/lasagna}
export RUNS=${RUNS:-200}
export WARMUP=${WARMUP:-20}
CARGO=${CARGO:-cargo}
CC=${CC:-cc}
SYSCOST_ROUNDS=${SYSCOST_ROUNDS:-2}
UNIT_RUNS=${UNIT_RUNS:-3}
PARTS=${PARTS:-launch syscost unit cgroups battery network}
OUT=target/bench
mkdir -p "$OUT/bin" "$OUT/profiles"
# Results of an earlier run must not pass for this one's.
rm -f "$OUT"/launch.json "$OUT"/launch.txt "$OUT"/interleave.txt "$OUT"/perf-*.txt "$OUT"/syscost-*.txt \
    "$OUT"/unit-*.txt "$OUT"/cgroups-*.json "$OUT"/battery.json "$OUT"/skipped.txt "$OUT"/summary.txt \
    "$OUT"/loadavg-start.txt "$OUT"/network.txt "$OUT"/network-launch.json
: >"$OUT/skipped.txt"

skip() { # part, reason
    echo "bench: SKIPPING $1: $2" >&2
    printf '%s: %s\n' "$1" "$2" >>"$OUT/skipped.txt"
}
want() { [[ " $PARTS " == *" $1 "* ]]; }
section() { echo; echo "== $*"; }

if [ ! -x "$LASAGNA" ]; then
    echo "bench: $LASAGNA not found; run 'make build' first" >&2
    exit 1
fi
start=$SECONDS
cut -d' ' -f1 /proc/loadavg >"$OUT/loadavg-start.txt"

# ---------------------------------------------------------------------------------------
# 1. Launch latency.
if want launch; then
    section "launch"
    if ! bench/launch.sh; then
        skip launch "bench/launch.sh failed (see above)"
    fi
fi

# ---------------------------------------------------------------------------------------
# 2. Per-syscall cost, host and sandbox.
if want syscost; then
    section "syscost: ns per call, best of 5 x $SYSCOST_ROUNDS rounds"
    bindir=$(cd "$OUT/bin" && pwd)
    # The build directory is bound at /opt/bench. Landlock's exec list is restated because a
    # child profile's lists replace its parent's (mounts are the exception: appended).
    cat >"$OUT/profiles/syscost.yaml" <<EOF
name: bench-syscost
description: strict, with bench/syscost bound read-only at /opt/bench and executable
extends: strict
layers:
  filesystem:
    mounts:
      - ro-bind: /opt/bench
        source: $bindir
  landlock:
    exec: [/usr, /opt/bench]
EOF
    prof=$OUT/profiles/syscost.yaml
    configs=(host none seccomp landlock strict)
    syscost() { # config: host (no lasagna), none, seccomp, landlock, strict (both)
        local in=/opt/bench/syscost
        case $1 in
            host) "$bindir/syscost" "$bindir/syscost" ;;
            none) "$LASAGNA" run -p "$prof" --without seccomp --without landlock -- "$in" "$in" ;;
            seccomp) "$LASAGNA" run -p "$prof" --without landlock -- "$in" "$in" ;;
            landlock) "$LASAGNA" run -p "$prof" --without seccomp -- "$in" "$in" ;;
            strict) "$LASAGNA" run -p "$prof" -- "$in" "$in" ;;
        esac
    }
    if ! command -v "$CC" >/dev/null; then
        skip syscost "no C compiler ($CC; apt-get install gcc)"
    elif ! "$CC" -O2 -Wall -o "$bindir/syscost" bench/syscost.c; then
        skip syscost "bench/syscost.c does not compile with $CC"
    elif ! syscost strict >/dev/null; then
        skip syscost "syscost does not run under lasagna -p $prof (see above)"
    else
        # Rounds interleave the configs, so that a burst of host noise hits one round of
        # each rather than every sample of one config; the best of all rounds is kept.
        for round in $(seq 1 "$SYSCOST_ROUNDS"); do
            for c in "${configs[@]}"; do
                syscost "$c" >"$OUT/syscost-$c-$round.txt" \
                    || skip "syscost $c" "run $round failed (see above)"
            done
        done
        python3 bench/summary.py --syscost "$OUT"
    fi
fi

# ---------------------------------------------------------------------------------------
# 3. The ignored benchmark tests (seccomp compile/install, Landlock rule counts).
if want unit; then
    section "unit benchmarks: cargo test --release --lib -- --ignored bench_figures bench_open_close"
    # Built once, then the test binary is run directly: a source tree that changes under
    # the bench (other work in progress) cannot rebuild it between runs.
    testbin=
    if ! command -v "$CARGO" >/dev/null; then
        skip unit "$CARGO not found"
    # Built as `make test` builds it (static, for the host triple), so its build is reused.
    elif ! RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        "$CARGO" test --release --target "$host" --lib --no-run --message-format=json \
        2>"$OUT/unit-build.txt" >"$OUT/unit-build.json"; then
        cat "$OUT/unit-build.txt" >&2
        skip unit "the library's tests do not build (see $OUT/unit-build.txt)"
    else
        testbin=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["profile"]["test"] and "lib" in m["target"]["kind"]:
        print(m["executable"])' "$OUT/unit-build.json")
        [ -x "$testbin" ] || skip unit "cargo built no library test binary"
    fi
    rm -f "$OUT/unit-build.json"
    if [ -x "$testbin" ]; then
        rm -f "$OUT/unit-build.txt"
        for n in $(seq 1 "$UNIT_RUNS"); do
            "$testbin" --ignored --nocapture --test-threads=1 bench_figures \
                >"$OUT/unit-seccomp-$n.txt" 2>&1 \
                || skip "unit bench_figures" "run $n failed (see $OUT/unit-seccomp-$n.txt)"
        done
        grep -hE 'BPF instructions|validate|install|ns/call' "$OUT/unit-seccomp-1.txt"
        if ! "$testbin" --ignored --nocapture --test-threads=1 bench_open_close \
            >"$OUT/unit-landlock.txt" 2>&1; then
            skip "unit bench_open_close" "failed (see $OUT/unit-landlock.txt)"
        elif ! grep -h 'landlock bench' "$OUT/unit-landlock.txt"; then
            skip "unit bench_open_close" "printed no figures: $(grep -m1 -i skip "$OUT/unit-landlock.txt")"
        fi
    fi
fi

# ---------------------------------------------------------------------------------------
# 4. Launch latency with and without the cgroups layer.
if want cgroups; then
    section "cgroups: launch with and without the cgroups layer, $RUNS runs each"
    cat >"$OUT/profiles/cgroups.yaml" <<'EOF'
name: bench-cgroups
description: strict with a memory and a pids limit
extends: strict
layers:
  cgroups:
    memory:
      max: 256M
    pids:
      max: 256
EOF
    prof=$OUT/profiles/cgroups.yaml
    if ! command -v hyperfine >/dev/null; then
        skip cgroups "hyperfine is not installed (apt-get install hyperfine)"
    elif ! "$LASAGNA" run -p "$prof" -- /bin/true; then
        skip cgroups "the cgroups layer cannot run here (as a normal user it needs a delegated cgroup; see the error above)"
    else
        # Two rounds in opposite orders, RUNS/2 runs each, merged by the summary: a change
        # in host load during the part then weighs on both commands alike.
        with=(-n "strict+cgroups" "$LASAGNA run -p $prof -- /bin/true")
        without=(-n "strict" "$LASAGNA run -p $prof --without cgroups -- /bin/true")
        for round in 1 2; do
            if [ "$round" = 1 ]; then order=("${with[@]}" "${without[@]}")
            else order=("${without[@]}" "${with[@]}"); fi
            hyperfine -N --style basic --warmup "$WARMUP" --runs "$((RUNS / 2))" \
                --export-json "$OUT/cgroups-$round.json" "${order[@]}" \
                || skip cgroups "hyperfine failed (see above)"
        done
    fi
fi

# ---------------------------------------------------------------------------------------
# 5. The battery: the leave-one-out matrix of `lasagna test strict`.
if want battery; then
    section "battery: lasagna test strict (full profile, each layer left out, every layer off)"
    "$LASAGNA" test strict --json >"$OUT/battery.json"
    case $? in
        0) ;;
        1) echo "bench: a probe got through strict (see $OUT/battery.json)" >&2 ;;
        *) skip battery "lasagna test failed (see above)"; rm -f "$OUT/battery.json" ;;
    esac
fi

# ---------------------------------------------------------------------------------------
# 6. The network layer: launch per mode, the proxy's throughput and added latency.
if want network; then
    section "network: launch per mode against none and bwrap, proxy throughput and latency"
    bench/network.sh || { skip network "bench/network.sh failed (see above)"; rm -f "$OUT/network.txt"; }
fi

# ---------------------------------------------------------------------------------------
echo
python3 bench/summary.py "$OUT" "$((SECONDS - start))" | tee "$OUT/summary.txt"
