#!/usr/bin/env bash
# Launch cost of one sandboxed /bin/true, side by side in one hyperfine run:
#   lasagna   lasagna run -p strict --without cgroups -- /bin/true (bwrap's sandbox has no
#             cgroup: the same sandbox on both sides)
#   lasagna+cgroups  lasagna run -p strict -- /bin/true (strict's best-effort memory and
#             pids limits: as root, a cgroup made and removed per run)
#   bwrap     bubblewrap with the same namespaces and the same mounts as the strict profile
#   unshare   unshare -Upmniuf -r /bin/true (namespaces only: the floor)
# Results: target/bench/launch.json (hyperfine), target/bench/perf-*.txt (perf stat), and a
# summary on stdout and in target/bench/launch.txt: median, p90, ratio to bwrap, CPU per
# launch (hyperfine's user+system, and perf's task-clock). Part of `make bench`
# (bench/run.sh), which measures the layers as well and sums everything up.
#
# Environment: LASAGNA (binary, default: what `make build` makes), RUNS (default 200),
# WARMUP (default 20).
set -euo pipefail

cd "$(dirname "$0")/.."
LASAGNA=${LASAGNA:-target/$(rustc -vV | sed -n 's/^host: //p')/release/lasagna}
RUNS=${RUNS:-200}
WARMUP=${WARMUP:-20}
OUT=target/bench
mkdir -p "$OUT"

if ! command -v hyperfine >/dev/null; then
    echo "bench: hyperfine is not installed (apt-get install hyperfine); nothing measured" >&2
    exit 1
fi
if [ ! -x "$LASAGNA" ]; then
    echo "bench: $LASAGNA not found; run 'make build' first" >&2
    exit 1
fi
if [ "$RUNS" -lt 200 ]; then
    echo "bench: RUNS=$RUNS is below 200; medians and p90 get noisy" >&2
fi

# Sanity: the sandbox must work before its speed means anything.
"$LASAGNA" run -p strict -- /bin/true

# ---------------------------------------------------------------------------------------
# Peers. Each is a name and a command line (hyperfine runs it without a shell: -N).
names=(lasagna lasagna+cgroups)
cmds=("$LASAGNA run -p strict --without cgroups -- /bin/true" "$LASAGNA run -p strict -- /bin/true")

# bwrap configured like profiles/strict.yaml (extends base.yaml): read-only /usr, the
# /bin /sbin /lib* entries (recreated as symlinks on merged-/usr hosts), the /etc files,
# passwd/group/hostname written by the profile, tmpfs /tmp and /work (256M), a fresh /proc,
# a minimal /dev, a read-only root, a new session, no capabilities, uid/gid 1000.
# lasagna writes passwd/group/hostname from the profile into its staging tmpfs; bwrap
# binds the same content from a scratch directory, which costs about the same.
if command -v bwrap >/dev/null; then
    bw=$(bench/bwrap-strict.sh "$OUT" /bin/true)
    if $bw; then
        names+=(bwrap)
        cmds+=("$bw")
    else
        echo "bench: skipping bwrap: it cannot run here (see the error above)" >&2
    fi
else
    echo "bench: skipping bwrap: not installed (apt-get install bubblewrap)" >&2
fi

if command -v unshare >/dev/null && unshare -Upmniuf -r /bin/true; then
    names+=(unshare)
    cmds+=("unshare -Upmniuf -r /bin/true")
else
    echo "bench: skipping unshare: not installed or cannot create namespaces here" >&2
fi

# ---------------------------------------------------------------------------------------
# Wall clock and CPU: one hyperfine run with every peer, so they share the same conditions.
args=()
for i in "${!names[@]}"; do
    args+=(-n "${names[$i]}" "${cmds[$i]}")
done
echo "== launch latency: $RUNS runs each, $WARMUP warmup, $(nproc) CPUs, kernel $(uname -r), $(id -un)"
hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$OUT/launch.json" "${args[@]}"

# The same commands interleaved, one run of each per round: drift on a shared machine
# (other tenants, frequency changes) then hits every peer alike. Each peer's run is
# followed by another peer's, so the kernel's namespace teardown that outlives a launcher
# lands on its neighbour: the figures mix a little, which the hyperfine run above avoids.
CC=${CC:-cc}
rm -f "$OUT/interleave.txt"
if command -v "$CC" >/dev/null && "$CC" -O2 -o "$OUT/interleave" bench/interleave.c; then
    iargs=()
    for i in "${!names[@]}"; do
        # interleave splits on spaces and needs the program's path.
        read -r prog rest <<<"${cmds[$i]}"
        iargs+=("${names[$i]}" "$(command -v "$prog") $rest")
    done
    echo "== interleaved: $((RUNS + 100)) rounds, $WARMUP warmup"
    "$OUT/interleave" $((RUNS + 100)) "$WARMUP" "${iargs[@]}" | tee "$OUT/interleave.txt"
else
    echo "bench: skipping the interleaved run: no C compiler ($CC)" >&2
fi

# CPU per launch counted by perf (task-clock of the launcher and every process it started).
perf_ok=false
if command -v perf >/dev/null && perf stat -e task-clock -x, -o /dev/null /bin/true 2>/dev/null; then
    perf_ok=true
    for i in "${!names[@]}"; do
        # shellcheck disable=SC2086 # the command is a word list by construction
        perf stat -e task-clock -x, -r "$RUNS" -o "$OUT/perf-${names[$i]}.txt" ${cmds[$i]} >/dev/null
    done
else
    echo "bench: perf not usable here; CPU per launch comes from hyperfine (user+system)" >&2
fi

python3 - "$OUT" "$perf_ok" <<'PY' | tee "$OUT/launch.txt"
import json, os, statistics, sys

out, perf_ok = sys.argv[1], sys.argv[2] == "true"
results = json.load(open(os.path.join(out, "launch.json")))["results"]

def p90(times):
    s = sorted(times)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]

def perf_ms(name):
    path = os.path.join(out, f"perf-{name}.txt")
    if not perf_ok or not os.path.exists(path):
        return None
    for line in open(path):
        f = line.strip().split(",")
        if len(f) > 2 and f[2] == "task-clock":
            return float(f[0])  # msec, mean over the runs
    return None

ref = next((r for r in results if r["command"] == "bwrap"), None)
print()
print(f"{'peer':<9} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8} {'vs bwrap':>9} "
      f"{'user+sys ms':>12} {'perf task-clock ms':>19}")
for r in results:
    med = statistics.median(r["times"]) * 1000
    ratio = (f"{statistics.median(r['times']) / statistics.median(ref['times']):.2f}x"
             if ref else "-")
    cpu = (r["user"] + r["system"]) * 1000
    pm = perf_ms(r["command"])
    print(f"{r['command']:<9} {med:>10.2f} {p90(r['times']) * 1000:>8.2f} "
          f"{r['mean'] * 1000:>8.2f} {ratio:>9} {cpu:>12.2f} "
          f"{(f'{pm:.2f}' if pm is not None else '-'):>19}")
print(f"\nruns per peer: {len(results[0]['times'])}; JSON: {out}/launch.json")
path = os.path.join(out, "interleave.txt")
if os.path.exists(path):
    rows = [l.split() for l in open(path) if l.strip()]
    ref = next((float(r[1]) for r in rows if r[0] == "bwrap"), None)
    print(f"\ninterleaved ({path}):")
    print(f"{'peer':<9} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8} {'vs bwrap':>9}")
    for name, med, p90, mean in rows:
        ratio = f"{float(med) / ref:.2f}x" if ref else "-"
        print(f"{name:<9} {float(med):>10.2f} {float(p90):>8.2f} {float(mean):>8.2f} {ratio:>9}")
PY

