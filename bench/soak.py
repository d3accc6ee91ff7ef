#!/usr/bin/env python3
"""`make soak`: many launches, some of them killed, and a check that nothing is left.

  1. SEQUENTIAL launches of strict + a cgroup (pids and memory limits), each /bin/true;
  2. KILLED launches whose supervisor gets SIGKILL at a random moment of its run;
  3. PID1 launches from a caller that is pid 1 of its own pid namespace;
  4. PAIRS of concurrent launches.

Then one more launch (its sweep removes what the killed supervisors left) and the checks:
no lasagna process and no zombie left, the host's mount table as before, no `lasagna-*`
cgroup under the parents, this caller's fd count as before. Prints the figures; exits 1
on any leak. Environment: LASAGNA, SEQUENTIAL (10000), KILLED (500), PID1 (200), PAIRS (100).
Needs root (cgroups under its own cgroup, unshare for the pid-1 caller).
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

LASAGNA = os.environ.get("LASAGNA") or sys.exit("soak: set LASAGNA to the launcher (make soak does)")
N_SEQ = int(os.environ.get("SEQUENTIAL", "10000"))
N_KILL = int(os.environ.get("KILLED", "500"))
N_PID1 = int(os.environ.get("PID1", "200"))
N_PAIRS = int(os.environ.get("PAIRS", "100"))

PROFILE = """name: soak
extends: strict
layers:
  cgroups:
    mode: required
    memory:
      max: 256M
    pids:
      max: 64
"""


def fds():
    return len(os.listdir("/proc/self/fd"))


def mounts():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def processes(marker):
    """Pids (other than ours) whose command line holds `marker`, and zombies anywhere
    below us."""
    found, zombies = [], []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if marker in cmd or cmd.startswith(LASAGNA):
            found.append((int(p), cmd.strip()))
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(p))
    return found, zombies


def cgroup_parents():
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            else:
                base = "/sys/fs/cgroup/" + ctrls.split(",")[0].replace("name=", "")
                if not os.path.isdir(base):
                    continue
            d = os.path.join(base, path.lstrip("/"))
            if os.path.isdir(d):
                out.append(d)
    return out


def lasagna_cgroups():
    left = []
    for parent in cgroup_parents():
        for e in os.listdir(parent):
            if e.startswith("lasagna-") and os.path.isdir(os.path.join(parent, e)):
                left.append(os.path.join(parent, e))
    return left


def run(profile, cmd=("/bin/true",), check=True):
    r = subprocess.run([LASAGNA, "run", "-p", profile, "--", *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        sys.exit(f"soak: a launch failed ({r.returncode}): {r.stderr.decode()}")
    return r.returncode


def main():
    if os.geteuid() != 0:
        sys.exit("soak: needs root")
    tmp = tempfile.mkdtemp(prefix="lasagna-soak-")
    os.chmod(tmp, 0o755)
    profile = os.path.join(tmp, "soak.yaml")
    with open(profile, "w") as f:
        f.write(PROFILE)
    marker = "7.%d" % os.getpid()  # the killed runs' `sleep` argument
    fds0, mounts0 = fds(), mounts()
    figures = []

    t = time.monotonic()
    for _ in range(N_SEQ):
        run(profile)
    dt = time.monotonic() - t
    figures.append(f"sequential: {N_SEQ} launches in {dt:.1f} s ({1000 * dt / max(N_SEQ, 1):.2f} ms each)")

    t = time.monotonic()
    killed = 0
    for _ in range(N_KILL):
        p = subprocess.Popen([LASAGNA, "run", "-p", profile, "--", "/bin/sleep", marker],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0, 0.02))
        p.send_signal(signal.SIGKILL)
        if p.wait() == -signal.SIGKILL:
            killed += 1
    dt = time.monotonic() - t
    left_by_kill = lasagna_cgroups()
    figures.append(f"killed: {N_KILL} launches SIGKILLed at a random moment ({killed} died of it) in {dt:.1f} s; "
                   f"the last one left {len(left_by_kill)} cgroup directories for the next sweep")

    caller = (
        "import os, subprocess, sys\n"
        f"for _ in range({N_PID1}):\n"
        f"    subprocess.run([{LASAGNA!r}, 'run', '-p', {profile!r}, '--', '/bin/true'], check=True)\n"
        "z = sum(1 for p in os.listdir('/proc') if p.isdigit() and "
        "open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z')\n"
        "print(z)\n"
    )
    t = time.monotonic()
    r = subprocess.run(["unshare", "-fp", "--mount-proc", sys.executable, "-c", caller],
                       capture_output=True, text=True)
    dt = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"soak: the pid-1 caller failed: {r.stderr}")
    pid1_zombies = int(r.stdout.strip() or "-1")
    figures.append(f"pid-1 caller: {N_PID1} launches in {dt:.1f} s, {pid1_zombies} zombies left to it")

    t = time.monotonic()
    for _ in range(N_PAIRS):
        a = subprocess.Popen([LASAGNA, "run", "-p", profile, "--", "/bin/true"], stdout=subprocess.DEVNULL)
        b = subprocess.Popen([LASAGNA, "run", "-p", profile, "--", "/bin/true"], stdout=subprocess.DEVNULL)
        if a.wait() != 0 or b.wait() != 0:
            sys.exit("soak: a concurrent launch failed")
    dt = time.monotonic() - t
    figures.append(f"pairs: {N_PAIRS} pairs of concurrent launches in {dt:.1f} s")

    stale = lasagna_cgroups()
    run(profile)  # its sweep removes what the killed supervisors left
    time.sleep(0.2)
    left_cgroups = lasagna_cgroups()
    procs, zombies = processes(marker)
    fds1, mounts1 = fds(), mounts()
    figures.append(f"stale cgroups before the last run's sweep: {len(stale)}; after: {len(left_cgroups)}")
    figures.append(f"processes left: {len(procs)}; zombies left: {len(zombies)}")
    figures.append(f"host mounts: {mounts0} before, {mounts1} after; caller fds: {fds0} before, {fds1} after")
    print("\n".join(figures))
    bad = (left_cgroups or procs or zombies or pid1_zombies != 0
           or fds1 != fds0 or mounts1 != mounts0)
    if bad:
        print(f"soak: LEAK: cgroups {left_cgroups} processes {procs} zombies {zombies}", file=sys.stderr)
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        sys.exit(1)
    print("soak: nothing left behind")


if __name__ == "__main__":
    main()
