#!/usr/bin/env python3
"""make mutants: apply each one-line mutant of tools/mutants.toml to a scratch copy of the
tree, build it, and run the tests the entry names against it. A mutant is killed when one of
its tests fails; a mutant whose tests all pass survived. Exit 1 when any mutant survived or
could not be applied or built (an error of the list).

Usage: tools/mutants.py [--only TEXT] [--from TEXT] [--list]

The scratch copy lives in target/mutants/tree with its own target directory, built with the
`mutants` cargo profile (release without LTO, incremental), so each mutant rebuilds only what
it touches. Tests run with LASAGNA_TEST_STRICT=1: a skipped test cannot kill a mutant.
"""

import argparse
import re
import os
import shutil
import subprocess
import sys
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "mutants")
TREE = os.path.join(WORK, "tree")


def host_target():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("host: "))


def sync_tree():
    """Copy the tracked and untracked-but-not-ignored files into TREE (a file that did not
    change keeps its time stamp, so cargo rebuilds only what differs)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        rel = f.decode()
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        dst = os.path.join(TREE, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(src, "rb") as a:
            data = a.read()
        old = None
        if os.path.exists(dst):
            with open(dst, "rb") as b:
                old = b.read()
        if old != data:
            with open(dst, "wb") as b:
                b.write(data)
            shutil.copymode(src, dst)


def cargo(args, env):
    return subprocess.run(
        ["cargo"] + args, cwd=TREE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="run only the mutants whose name contains TEXT")
    ap.add_argument("--from", dest="start", metavar="TEXT",
                    help="start at the first mutant whose name contains TEXT (resume a run)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    opts = ap.parse_args()
    with open(os.path.join(ROOT, "tools", "mutants.toml"), "rb") as f:
        mutants = tomllib.load(f).get("mutant", [])
    if opts.only:
        mutants = [m for m in mutants if opts.only in m["name"]]
    if opts.start:
        at = next((i for i, m in enumerate(mutants) if opts.start in m["name"]), None)
        if at is None:
            print(f"mutants: no mutant's name contains {opts.start!r}")
            return 1
        mutants = mutants[at:]
    if opts.list:
        for m in mutants:
            print(f"{m['name']}  ({m['file']}; {', '.join(m['tests'])})")
        return 0
    if not mutants:
        print("mutants: none selected")
        return 1
    os.makedirs(TREE, exist_ok=True)
    sync_tree()
    target = os.environ.get("TARGET") or host_target()
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = os.path.join(WORK, "target")
    env["LASAGNA_TEST_STRICT"] = "1"
    env.pop("LASAGNA_TEST_BIN", None)
    if "-musl" not in target:
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + " -C target-feature=+crt-static").strip()
    build = ["--profile", "mutants", "--target", target]

    base = cargo(["build"] + build, env)
    if base.returncode != 0:
        print(base.stdout[-4000:])
        print("mutants: the unmutated tree does not build")
        return 1

    results = []
    for m in mutants:
        name, rel = m["name"], m["file"]
        path = os.path.join(TREE, rel)
        with open(path, encoding="utf-8") as f:
            original = f.read()
        count = original.count(m["find"])
        if count != 1:
            results.append((name, "error", f"`find` occurs {count} times in {rel}"))
            print(f"ERROR    {name}: `find` occurs {count} times in {rel}", flush=True)
            continue
        started = time.monotonic()
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(original.replace(m["find"], m["replace"]))
            outcome, detail = "survived", ""
            for t in m["tests"]:
                args = t.split()
                rest = []
                if "--" in args:
                    i = args.index("--")
                    args, rest = args[:i], args[i + 1:]
                r = cargo(["test"] + build + args + ["--", "--test-threads=2"] + rest, env)
                if r.returncode == 0:
                    ran = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", r.stdout))
                    if ran == 0:
                        outcome, detail = "error", f"`{t}` ran no test"
                        break
                    continue
                if "could not compile" in r.stdout or "error[E" in r.stdout:
                    outcome, detail = "error", f"does not build:\n{r.stdout[-3000:]}"
                else:
                    failed = [l for l in r.stdout.splitlines() if l.startswith("test ") and l.endswith("FAILED")]
                    outcome, detail = "killed", f"by `{t}`: " + "; ".join(l[5:-10] for l in failed[:3])
                break
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(original)
        secs = time.monotonic() - started
        results.append((name, outcome, detail))
        print(f"{outcome.upper():8} {name} ({secs:.0f} s) {detail.splitlines()[0] if detail else ''}", flush=True)
        if outcome == "error" and detail:
            print(detail)

    killed = sum(1 for _, o, _ in results if o == "killed")
    print(f"\nmutants: {killed} killed, {len(results) - killed} not killed, of {len(results)}")
    for name, outcome, _ in results:
        if outcome != "killed":
            print(f"  {outcome}: {name}")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
