#!/usr/bin/env python3
"""One table of every figure `make bench` (bench/run.sh) measured, against its target.

Usage: summary.py OUTDIR [SECONDS]    the whole summary (run.sh tees it to summary.txt)
       summary.py --syscost OUTDIR    only the syscost matrix (ns per call per config)

Reads what bench/run.sh left in OUTDIR (target/bench); a missing input gives "-" and, if the
part was skipped, the reason from skipped.txt. Verdicts: a "<=" target is met or MISSed; a
"~" target (a cost expected to be about that much) is "ok" up to 1.5 times the figure and
HIGH beyond.
"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys

SYSCOST_CONFIGS = ["host", "none", "seccomp", "landlock", "strict"]


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def p90(times):
    s = sorted(times)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def interleaved(out):
    """{peer: median ms} from bench/interleave.c's output, if the launch part ran it."""
    path = os.path.join(out, "interleave.txt")
    if not os.path.exists(path):
        return {}
    medians = {}
    for line in open(path):
        f = line.split()
        if len(f) == 4:
            medians[f[0]] = float(f[1])
    return medians


def hyperfine(out, pattern):
    """{command name: (median s, p90 s, mean s, user+sys s per run, runs)} from the hyperfine
    JSON exports matching pattern, the runs of one command merged across files."""
    times, cpu = {}, {}
    for path in sorted(glob.glob(os.path.join(out, pattern))):
        for r in json.loads(read(path))["results"]:
            times.setdefault(r["command"], []).extend(r["times"])
            cpu.setdefault(r["command"], []).append((r["user"] + r["system"], len(r["times"])))
    return {
        c: (statistics.median(t), p90(t), statistics.mean(t),
            sum(u * n for u, n in cpu[c]) / len(t), len(t))
        for c, t in times.items()
    }


def perf_ms(out, name):
    text = read(os.path.join(out, f"perf-{name}.txt"))
    for line in (text or "").splitlines():
        f = line.strip().split(",")
        if len(f) > 2 and f[2] == "task-clock":
            return float(f[0])  # msec, mean over the runs
    return None


def syscost(out):
    """({(loop, config): best ns}, {(loop, config)} that failed their check), loops in order."""
    best, bad, loops = {}, set(), []
    for c in SYSCOST_CONFIGS:
        for path in sorted(glob.glob(os.path.join(out, f"syscost-{c}-*.txt"))):
            for line in open(path):
                f = line.split()
                if not f:
                    continue
                if f[0] == "check":
                    if f[2:] != ["ok"]:
                        bad.add((f[1], c))
                    if f[1] not in loops:
                        loops.append(f[1])
                elif len(f) == 2:
                    best[f[0], c] = min(best.get((f[0], c), float("inf")), float(f[1]))
    return best, bad, loops


def syscost_matrix(out):
    best, bad, loops = syscost(out)
    if not loops:
        return []
    rows = [f"{'ns/call':<16}" + "".join(f"{c:>10}" for c in SYSCOST_CONFIGS)]
    for loop in loops:
        cells = []
        for c in SYSCOST_CONFIGS:
            v = best.get((loop, c))
            cells.append("FAILED" if (loop, c) in bad else "-" if v is None else f"{v:.1f}")
        rows.append(f"{loop:<16}" + "".join(f"{x:>10}" for x in cells))
    return rows


DURATION = re.compile(r"([0-9.]+)\s*(ns|µs|us|ms|s)\b")
SCALE_NS = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def unit_seccomp(out):
    """Medians over the bench_figures runs: install ns, compile ns, {call: (none, lasagna)}."""
    install, compile_, calls, insns = [], [], {}, None
    for path in sorted(glob.glob(os.path.join(out, "unit-seccomp-*.txt"))):
        for line in open(path):
            if line.startswith("install"):
                m = re.search(r"(\d+) ns", line)
                if m:
                    install.append(int(m.group(1)))
            elif line.startswith("validate + prepare"):
                m = DURATION.search(line.split(":", 1)[1])
                if m:
                    compile_.append(float(m.group(1)) * SCALE_NS[m.group(2)])
            elif "ns/call" in line:
                name = line.split()[0].split("(")[0]
                m = re.search(r"none ([0-9.]+)\s+lasagna ([0-9.]+)", line)
                if m:
                    calls.setdefault(name, []).append((float(m.group(1)), float(m.group(2))))
            elif "BPF instructions" in line:
                m = re.search(r"(\d+) BPF instructions", line)
                insns = m and int(m.group(1))
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    calls = {k: (med([a for a, _ in v]), med([b for _, b in v])) for k, v in calls.items()}
    return med(install), med(compile_), calls, insns, len(install)


def unit_landlock(out):
    text = read(os.path.join(out, "unit-landlock.txt")) or ""
    base = re.search(r"no landlock: (\d+) ns/op", text)
    rules = re.findall(r"(\d+) rules: \d+ ns/op \(([+-]?\d+) ns\)", text)
    return (int(base.group(1)) if base else None), [(int(n), int(d)) for n, d in rules]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main():
    if sys.argv[1] == "--syscost":
        print("\n".join(syscost_matrix(sys.argv[2])))
        return
    out = sys.argv[1]
    took = sys.argv[2] if len(sys.argv) > 2 else "?"
    rows = []  # figure, measured, against, delta, target, verdict

    def verdict(value, target, kind):
        if value is None or kind == "info":
            return ""
        if kind == "<=":
            return "ok" if value <= target else "MISS"
        return "ok" if value <= 1.5 * target else "HIGH"

    # 1. launch
    launch = hyperfine(out, "launch.json")
    las, bw, un = launch.get("lasagna"), launch.get("bwrap"), launch.get("unshare")
    if las:
        ms = lambda s: f"{s * 1000:.2f} ms"  # noqa: E731
        if bw:
            r = las[0] / bw[0]
            rows.append(("launch median (strict, no cgroup)", ms(las[0]), f"bwrap {ms(bw[0])}",
                         f"{r:.2f}x", "<= bwrap", verdict(r, 1.0, "<=")))
            rows.append(("launch p90 (strict)", ms(las[1]), f"bwrap {ms(bw[1])}",
                         f"{las[1] / bw[1]:.2f}x", "", ""))
        else:
            rows.append(("launch median / p90 (strict)", f"{ms(las[0])} / {ms(las[1])}",
                         "bwrap skipped", "", "<= bwrap", ""))
        inter = interleaved(out)
        if "lasagna" in inter and "bwrap" in inter:
            r = inter["lasagna"] / inter["bwrap"]
            rows.append(("launch median, interleaved", f"{inter['lasagna']:.2f} ms",
                         f"bwrap {inter['bwrap']:.2f} ms", f"{r:.2f}x", "<= bwrap",
                         verdict(r, 1.0, "<=")))
        lcg = launch.get("lasagna+cgroups")
        if lcg and bw:
            rows.append(("launch median (strict with its cgroups)", ms(lcg[0]), f"bwrap {ms(bw[0])}",
                         f"{lcg[0] / bw[0]:.2f}x", "", ""))
        if un:
            rows.append(("launch median vs unshare", ms(las[0]), f"unshare {ms(un[0])}",
                         f"{las[0] / un[0]:.2f}x", "(floor)", ""))
        cpu = perf_ms(out, "lasagna")
        src = "perf task-clock"
        if cpu is None:
            cpu, src = las[3] * 1000, "user+sys"
        bcpu = perf_ms(out, "bwrap") if cpu is not None and src.startswith("perf") else None
        rows.append((f"launch CPU ({src})", f"{cpu:.2f} ms",
                     f"bwrap {bcpu:.2f} ms" if bcpu is not None else "", "", "<= 4 ms",
                     verdict(cpu, 4.0, "<=")))

    # 2. syscost
    best, bad, _ = syscost(out)

    def delta_row(label, loop, on, off, target, kind, unit_ns=1.0):
        a, b = best.get((loop, on)), best.get((loop, off))
        if (loop, on) in bad or (loop, off) in bad:
            rows.append((label, "FAILED", "", "", "", "check syscost-*.txt"))
        elif a is not None and b is not None:
            d = a - b
            rows.append((label, f"{a:.0f} ns", f"{off} {b:.0f} ns", f"{d:+.0f} ns",
                         {"~": "~ ", "<=": "<= "}.get(kind, "(info) ") + f"+{target:g} ns",
                         verdict(d, target, kind)))

    delta_row("seccomp getppid (allow-listed)", "getppid", "seccomp", "none", 55, "~")
    delta_row("seccomp ioctl FIONREAD (args)", "ioctl_fionread", "seccomp", "none", 150, "<=")
    delta_row("seccomp clone (args)", "clone_einval", "seccomp", "none", 150, "<=")
    delta_row("seccomp socket EINVAL (args)", "socket_einval", "seccomp", "none", 150, "<=")
    delta_row("seccomp socket+close (args)", "socket_close", "seccomp", "none", 150, "info")

    # 3. unit: seccomp install/compile, in-process calls
    install, compile_, calls, insns, n = unit_seccomp(out)
    if install is not None:
        rows.append((f"seccomp install (unit, med of {n})", f"{install / 1e6:.3f} ms",
                     f"{insns} BPF insns" if insns else "", "", "<= 0.4 ms",
                     verdict(install / 1e6, 0.4, "<=")))
    if compile_ is not None:
        rows.append(("seccomp load+compile (unit)", f"{compile_ / 1e6:.3f} ms", "", "",
                     "<= 1 ms", verdict(compile_ / 1e6, 1.0, "<=")))
    for name, target, kind in (("getppid", 55, "~"), ("ioctl", 150, "<=")):
        if name in calls and None not in calls[name]:
            none, las_ns = calls[name]
            d = las_ns - none
            rows.append((f"seccomp {name} (unit, in-process)", f"{las_ns:.0f} ns",
                         f"none {none:.0f} ns", f"{d:+.0f} ns",
                         f"{'~' if kind == '~' else '<='} +{target} ns",
                         verdict(d, target, kind)))

    # Landlock
    a, b = best.get(("open_close", "landlock")), best.get(("open_close", "none"))
    if ("open_close", "landlock") in bad or ("open_close", "none") in bad:
        rows.append(("landlock open+close (strict)", "FAILED", "", "", "", "check syscost-*.txt"))
    elif a is not None and b is not None:
        d = a - b
        rows.append(("landlock open+close (strict)", f"{a:.0f} ns", f"none {b:.0f} ns",
                     f"{d:+.0f} ns", "~ +1400 ns", verdict(d, 1400, "~")))
    base, rules = unit_landlock(out)
    if base is not None and rules:
        rows.append(("landlock open+close (unit)", f"{base} ns no LL",
                     "rules " + "/".join(str(r) for r, _ in rules),
                     "/".join(f"{d:+d}" for _, d in rules) + " ns", "~ +1400 ns",
                     verdict(max(d for _, d in rules), 1400, "~")))

    # 4. cgroups
    cg = hyperfine(out, "cgroups-*.json")
    on, off = cg.get("strict+cgroups"), cg.get("strict")
    if on and off:
        for i, what in ((0, "median"), (1, "p90")):
            rows.append((f"cgroups launch {what} ({on[4]} runs)", f"{on[i] * 1000:.2f} ms",
                         f"without {off[i] * 1000:.2f} ms",
                         f"{(on[i] - off[i]) * 1000:+.2f} ms", "", ""))

    # 5. battery
    raw = read(os.path.join(out, "battery.json"))
    if raw:
        m = json.loads(raw)
        secs = m["wall_ms"] / 1000.0
        through = sum(1 for r in m["rows"] if r["cells"][0] == "through")
        rows.append((f"lasagna test strict ({len(m['rows'])} probes x {len(m['columns'])} columns)",
                     f"{secs:.1f} s", f"{through} through", "", "<= 30 s",
                     verdict(secs, 30, "<=")))

    # Print
    user = sh("id", "-un") or "?"
    commit = sh("git", "rev-parse", "--short", "HEAD") or "?"
    if sh("git", "status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    load0 = (read(os.path.join(out, "loadavg-start.txt")) or "?").strip()
    load1 = (read("/proc/loadavg") or "?").split()[0]
    print(f"== lasagna bench summary: {os.cpu_count()} CPUs, Linux {os.uname().release}, "
          f"{user}, commit {commit}, {took} s, load average {load0} at start, {load1} at end")
    try:
        if float(load0) > 0.5 * os.cpu_count():
            print(f"WARNING: the machine was busy when the bench started (load {load0}); "
                  "figures are noisy, compare them with care")
    except ValueError:
        pass
    head = ("figure", "measured", "against", "delta", "target", "")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
    for r in [head] + rows:
        print("  ".join(f"{str(x):<{w}}" for x, w in zip(r, widths)).rstrip())
    matrix = syscost_matrix(out)
    if matrix:
        print("\nsyscost, best ns/call; host = no lasagna; none/seccomp/landlock/strict = "
              "lasagna strict with those layers")
        print("\n".join(matrix))
    network = (read(os.path.join(out, "network.txt")) or "").strip()
    if network:
        print("\nnetwork (bench/network.sh):")
        print("\n".join(f"  {l}" for l in network.splitlines()))
    skipped = (read(os.path.join(out, "skipped.txt")) or "").strip()
    if skipped:
        print("\nSKIPPED:")
        for line in skipped.splitlines():
            print(f"  {line}")
    print(f"\nraw results: {out}/ (launch.json, cgroups-*.json, perf-*, syscost-*, unit-*)")


if __name__ == "__main__":
    main()
