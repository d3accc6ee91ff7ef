//! The seccomp layer on the real kernel, alone: every other layer is switched off
//! (`--without namespaces --without filesystem ...`), so what stops a call here is the filter
//! and nothing else. Each edge is probed from inside the payload with raw syscalls
//! (tests/data/seccomp/probes.py, python3 + ctypes), and each probe is run a second time with
//! `--without seccomp` as the control: the kernel's own answer there must differ, or the
//! test could not fail.
//!
//! In the edge probes, root's payload keeps uid 0 and every capability (a profile with
//! `host-uid: 0`, namespaces and capabilities off), so an EPERM cannot come from a missing
//! privilege; elsewhere it gets lasagna's unprivileged default (uid 65534). As the
//! unprivileged user the payload runs with the user's own ids. Probe arguments are bad on purpose
//! (NULL pointers, fd -1, unknown flags): past the filter, the kernel answers EFAULT, EBADF,
//! EINVAL or ENOSYS and changes nothing.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::Output;

const PYTHON: &str = "/usr/bin/python3";
const PROBES: &str = include_str!("data/seccomp/probes.py");
const CONTAINERS_JSON: &str = "/usr/share/containers/seccomp.json";

/// Every layer but seccomp (and landlock, which some tests keep) switched off.
const OTHERS_OFF: &[&str] = &[
    "--without",
    "namespaces",
    "--without",
    "filesystem",
    "--without",
    "capabilities",
    "--without",
    "rlimits",
    "--without",
    "process",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seccomp {
    On,
    Off,
}

/// What the probes need from the host: x86_64 syscall numbers and python3.
fn host_can_probe(test: &str) -> bool {
    // The probes use x86_64 syscall numbers.
    if !need(test, Feature::X86_64) {
        return false;
    }
    if !std::path::Path::new(PYTHON).exists() {
        skip(test, &format!("{PYTHON} is missing"));
        return false;
    }
    true
}

/// `lasagna run -p PROFILE OTHERS_OFF [--without landlock] [--without seccomp] -- CMD`.
fn run_with(
    who: As,
    profile: &str,
    landlock: bool,
    seccomp: Seccomp,
    extra: &[&str],
    cmd: &[&str],
) -> Output {
    let mut args = vec!["run", "-p", profile];
    args.extend_from_slice(OTHERS_OFF);
    if !landlock {
        args.extend(["--without", "landlock"]);
    }
    if seccomp == Seccomp::Off {
        args.extend(["--without", "seccomp"]);
    }
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    run(who, &args)
}

/// seccomp alone (or nothing at all, with `Seccomp::Off`).
fn run_alone(who: As, profile: &str, seccomp: Seccomp, cmd: &[&str]) -> Output {
    run_with(who, profile, false, seccomp, &[], cmd)
}

/// A profile for `who`: strict, plus, for root, `host-uid: 0` so that the payload keeps
/// uid 0 and all its capabilities once namespaces and capabilities are off.
fn profile_for(who: As, dir: &Scratch) -> String {
    let ids = match who {
        As::Root => {
            "layers:\n  namespaces:\n    host-uid: 0\n    host-gid: 0\n    run-as-host-root: true\n"
        }
        As::User => "",
    };
    dir.write("p.yaml", &format!("extends: strict\n{ids}"))
}

/// Run the named probes in one payload; `name → ok | ERRNO | SIGn`.
fn probe(who: As, profile: &str, seccomp: Seccomp, names: &[&str]) -> BTreeMap<String, String> {
    let mut cmd = vec![PYTHON, "-c", PROBES];
    cmd.extend_from_slice(names);
    let o = run_alone(who, profile, seccomp, &cmd);
    assert_code(&o, 0);
    let out = stdout(&o);
    let results: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for name in names {
        assert!(results.contains_key(*name), "no result for {name}: {out}");
    }
    results
}

/// Why the unfiltered kernel's answer to a probe differs from the filter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// The bad argument is checked before any privilege: the kernel never says EPERM.
    Differs,
    /// The call checks a privilege first; an unprivileged caller gains it over a new user
    /// namespace (probes.py `gain_caps`), which the host may refuse.
    Userns,
    /// The call checks a capability in the initial user namespace first (or did, on older
    /// kernels): as the unprivileged user the kernel's own answer may be EPERM too, so the
    /// control cannot differ there. The as_root run, with every capability, shows it does;
    /// where the call is compiled out the kernel answers ENOSYS for both.
    CapGated,
}

/// Each dangerous edge: probe, what the filter answers, what the control shows.
const EDGES: &[(&str, &str, Control)] = &[
    ("io_uring_setup", "EPERM", Control::Differs),
    // Where the host allows unprivileged user namespaces, the control succeeds.
    ("unshare_newuser", "EPERM", Control::Userns),
    ("setns", "EPERM", Control::Differs),
    ("clone_newuser", "EPERM", Control::Userns),
    ("clone_newuser_newnet", "EPERM", Control::Userns),
    // clone reads its flags as 32 bits (lower_32_bits in kernel/fork.c): so must the filter.
    ("clone_newuser_hi32", "EPERM", Control::Userns),
    // ENOSYS, not EPERM: libc then falls back to clone(2), whose flags the filter can see.
    ("clone3", "ENOSYS", Control::Differs),
    ("mount", "EPERM", Control::Differs),
    ("umount2", "EPERM", Control::Differs),
    ("pivot_root", "EPERM", Control::Userns),
    ("chroot", "EPERM", Control::Differs),
    ("fsopen", "EPERM", Control::Userns),
    ("fsconfig", "EPERM", Control::Differs),
    ("fsmount", "EPERM", Control::Userns),
    ("fspick", "EPERM", Control::Userns),
    ("open_tree", "EPERM", Control::Differs),
    ("move_mount", "EPERM", Control::Userns),
    ("mount_setattr", "EPERM", Control::Differs),
    ("keyctl", "EPERM", Control::Differs),
    ("add_key", "EPERM", Control::Differs),
    ("request_key", "EPERM", Control::Differs),
    // Older kernels check kernel.unprivileged_bpf_disabled before the command.
    ("bpf", "EPERM", Control::CapGated),
    ("perf_event_open", "EPERM", Control::Differs),
    // Before UFFD_USER_MODE_ONLY (5.11) vm.unprivileged_userfaultfd=0 meant EPERM first.
    ("userfaultfd", "EPERM", Control::CapGated),
    ("ptrace", "EPERM", Control::Differs),
    ("process_vm_readv", "EPERM", Control::Differs),
    ("kexec_load", "EPERM", Control::CapGated),
    ("kexec_file_load", "EPERM", Control::CapGated),
    ("init_module", "EPERM", Control::CapGated),
    ("finit_module", "EPERM", Control::CapGated),
    ("delete_module", "EPERM", Control::CapGated),
    // Before 6.10 CAP_DAC_READ_SEARCH was checked before the handle was read.
    ("open_by_handle_at", "EPERM", Control::CapGated),
    ("name_to_handle_at", "EPERM", Control::Differs),
    ("personality_bsd", "EPERM", Control::Differs),
    ("personality_read_implies_exec", "EPERM", Control::Differs),
    ("socket_vsock", "EPERM", Control::Differs),
    ("socket_vsock_hi32", "EPERM", Control::Differs),
    // stdin is /dev/null: unfiltered, the tty ioctls fail with ENOTTY.
    ("ioctl_tiocsti", "EPERM", Control::Differs),
    // ioctl's cmd is an unsigned int: the high bits are dropped by the kernel, so the filter
    // must compare the low 32 bits only (Flatpak CVE-2019-10063).
    ("ioctl_tiocsti_hi32", "EPERM", Control::Differs),
    ("ioctl_tioclinux", "EPERM", Control::Differs),
    // The x32 ABI and the i386 entry point (int 0x80) kill the process: SIGSYS.
    ("x32_getpid", "SIG31", Control::Differs),
    ("i386_getpid", "SIG31", Control::Differs),
];

/// Ordinary calls next to the edges: the filter lets them through (it is not a blanket deny).
const ORDINARY: &[&str] = &["getpid", "clone_plain", "personality_query", "socket_unix"];

both!(dangerous_edges_are_blocked_by_seccomp_alone, |who| {
    let test = "dangerous_edges_are_blocked_by_seccomp_alone";
    if !host_can_probe(test) {
        return;
    }
    let dir = Scratch::new("edges");
    let profile = profile_for(who, &dir);
    let names: Vec<&str> = EDGES
        .iter()
        .map(|(n, _, _)| *n)
        .chain(ORDINARY.iter().copied())
        .collect();
    let filtered = probe(who, &profile, Seccomp::On, &names);
    let unfiltered = probe(who, &profile, Seccomp::Off, &names);

    for name in ORDINARY {
        assert_eq!(filtered[*name], "ok", "{name} is allowed: {filtered:?}");
        assert_eq!(unfiltered[*name], "ok", "{name}: {unfiltered:?}");
    }
    let userns_refused = unfiltered["unshare_newuser"] != "ok";
    let mut wrong = Vec::new();
    for (name, want, control) in EDGES {
        let got = &filtered[*name];
        let kernel = &unfiltered[*name];
        if got != want {
            wrong.push(format!("{name}: filter answered {got}, want {want}"));
        }
        if kernel != got {
            continue;
        }
        match control {
            Control::CapGated if who == As::User && kernel == "EPERM" => eprintln!(
                "NOTE {test}::as_user: {name}: no control for an unprivileged payload (the \
                 kernel checks a capability of the initial user namespace first); \
                 {test}::as_root runs it with every capability and shows the filter's answer differs"
            ),
            Control::Userns if who == As::User && userns_refused => skip(
                test,
                &format!("{name}: the host refuses unprivileged user namespaces: no control"),
            ),
            _ => wrong.push(format!(
                "{name}: {kernel} with and without seccomp: the probe shows nothing"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nfiltered: {filtered:?}\nunfiltered: {unfiltered:?}",
        wrong.join("\n")
    );
    // The kernel itself ignores the high 32 bits of these arguments: a filter comparing all
    // 64 would let the `_hi32` variants through.
    for (hi, lo) in [
        ("ioctl_tiocsti_hi32", "ioctl_tiocsti"),
        ("socket_vsock_hi32", "socket_vsock"),
        ("clone_newuser_hi32", "clone_newuser"),
    ] {
        assert_eq!(unfiltered[hi], unfiltered[lo], "{unfiltered:?}");
    }
    if who == As::User && !userns_refused {
        assert_eq!(unfiltered["unshare_newuser"], "ok");
        assert_eq!(unfiltered["clone_newuser_newnet"], "ok");
    }
});

both!(x32_syscall_kills_the_payload, |who| {
    if !host_can_probe("x32_syscall_kills_the_payload") {
        return;
    }
    let script = "import ctypes\nctypes.CDLL(None).syscall(39 | 0x40000000)\nprint('survived')";
    let o = run_alone(who, "strict", Seccomp::On, &[PYTHON, "-c", script]);
    assert_code(&o, 128 + 31);
    assert_eq!(stdout(&o), "", "nothing runs after the x32 call");
    // Unfiltered, the x32 getpid returns (ENOSYS without CONFIG_X86_X32_ABI, a pid with it).
    let o = run_alone(who, "strict", Seccomp::Off, &[PYTHON, "-c", script]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "survived\n");
});

/// Root only. lasagna's init always starts a session of its own, so the payload never keeps
/// the caller's terminal as its controlling tty: for an unprivileged payload the kernel
/// refuses TIOCSTI with or without the filter, and no control can differ (the batch probe
/// above covers that identity, with ENOTTY as the control). Root's payload keeps
/// CAP_SYS_ADMIN, with which TIOCSTI works on any terminal (even with
/// dev.tty.legacy_tiocsti=0): there only the filter stops it.
#[test]
fn tiocsti_into_a_terminal_is_blocked_even_with_cap_sys_admin() {
    let test = "tiocsti_into_a_terminal_is_blocked_even_with_cap_sys_admin";
    if !can_run(test, As::Root) || !host_can_probe(test) {
        return;
    }
    let dir = Scratch::new("tiocsti");
    let profile = profile_for(As::Root, &dir);
    let inner = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n\
                 c = ctypes.c_char(b'X')\nfor cmd in (0x5412, 0x5412 | 1 << 32):\n  \
                 r = libc.syscall(ctypes.c_long(16), ctypes.c_long(0), ctypes.c_ulong(cmd), \
                 ctypes.byref(c))\n  \
                 print('injected' if r == 0 else ctypes.get_errno(), end=' ')";
    let attempt = |seccomp: Seccomp| -> String {
        let mut args = vec!["run", "-p", profile.as_str()];
        args.extend_from_slice(OTHERS_OFF);
        args.extend(["--without", "landlock"]);
        if seccomp == Seccomp::Off {
            args.extend(["--without", "seccomp"]);
        }
        args.extend(["--", PYTHON, "-c", inner]);
        let cmd = command(As::Root, &args);
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        on_a_pty(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // TIOCSTI, then TIOCSTI with bit 32 set (the kernel reads cmd as 32 bits): EPERM twice.
    let out = attempt(Seccomp::On);
    assert!(
        out.starts_with("0 1 1 | pending: b''"),
        "EPERM twice: {out}"
    );
    let out = attempt(Seccomp::Off);
    assert!(
        out.starts_with("0 injected injected | pending: b'XX'"),
        "unfiltered, both commands push a byte: {out}"
    );
}

both!(mptcp_is_refused_when_landlock_restricts_tcp, |who| {
    let test = "mptcp_is_refused_when_landlock_restricts_tcp";
    if !host_can_probe(test) {
        return;
    }
    if std::fs::read_to_string("/proc/sys/net/mptcp/enabled").map_or(true, |v| v.trim() != "1") {
        skip(test, "MPTCP is not enabled (net.mptcp.enabled): no control");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket\nfor name, proto in (('mptcp', 262), ('tcp', 6)):\n  try:\n    \
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto); s.settimeout(2)\n    \
         s.connect(('127.0.0.1', {port})); print(name, 'connected')\n  \
         except OSError as e:\n    print(name, e.errno)"
    );
    let dir = Scratch::new("mptcp");
    // The shipped seccomp policy and a Landlock policy whose paths exist on any host.
    let profile = dir.write(
        "p.yaml",
        "extends: seccomp-default\nlayers:\n  landlock:\n    mode: required\n    \
         read: [/usr, /etc, /proc, /dev]\n    exec: [/usr]\n    rules:\n      - path: /\n        \
         access: [read-dir]\n      - path: /lib64\n        access: [exec]\n        \
         optional: true\n    net:\n      connect: [80]\n",
    );
    let cmd = [PYTHON, "-c", script.as_str()];
    // Landlock's TCP rules and seccomp: MPTCP gets EPROTONOSUPPORT (93), as from a kernel
    // without it; TCP to a port not in `connect` gets Landlock's EACCES (13).
    let o = run_with(who, &profile, true, Seccomp::On, &[], &cmd);
    if o.status.code() == Some(125) && stderr(&o).contains("ABI") {
        skip(
            test,
            &format!("landlock net rules need ABI 4: {}", stderr(&o)),
        );
        return;
    }
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "mptcp 93\ntcp 13\n");
    // The gap the rule closes: without seccomp, MPTCP reaches the port Landlock denies TCP.
    let o = run_with(who, &profile, true, Seccomp::Off, &[], &cmd);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "mptcp connected\ntcp 13\n");
    // Without Landlock net rules, seccomp leaves MPTCP alone.
    let o = run_alone(who, "strict", Seccomp::On, &cmd);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "mptcp connected\ntcp connected\n");
    drop(listener);
});

/// Shell, coreutils, python3 threads and subprocess: what an ordinary payload does.
const ORDINARY_SCRIPT: &str = r#"ls / | wc -l
d=$(mktemp -d)
printf 'pear\napple\nfig\n' > "$d/in"
cp "$d/in" "$d/copy"
sort "$d/copy"
date -u -d @0 +%Y-%m-%d
stat -c %s "$d/copy"
rm -r "$d"
[ -e "$d" ] || echo removed
/usr/bin/python3 -c '
import subprocess, sys, threading
squares = []
threads = [threading.Thread(target=lambda i=i: squares.append(i * i)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(squares))
print(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())
print(subprocess.check_output([sys.executable, "-c", "print(6 * 7)"]).decode().strip())
'
"#;

const ORDINARY_OUTPUT: &str =
    "apple\nfig\npear\n1970-01-01\n15\nremoved\n[0, 1, 4, 9]\nchild\n42\n";

/// The script's output split into the entry count of / and the rest.
fn ordinary(o: &Output) -> (u32, String) {
    let out = stdout(o);
    let (count, rest) = out.split_once('\n').unwrap_or(("", ""));
    (count.trim().parse().unwrap_or(0), rest.to_string())
}

both!(ordinary_programs_run_under_the_default_policy, |who| {
    if !host_can_probe("ordinary_programs_run_under_the_default_policy") {
        return;
    }
    let sh = ["/bin/sh", "-c", ORDINARY_SCRIPT];
    // Every layer on.
    let mut args = vec!["run", "-p", "strict", "--"];
    args.extend_from_slice(&sh);
    let o = run(who, &args);
    assert_code(&o, 0);
    let (entries, rest) = ordinary(&o);
    assert!(entries > 0, "{}", stdout(&o));
    assert_eq!(rest, ORDINARY_OUTPUT, "stderr: {}", stderr(&o));
    // seccomp alone.
    let o = run_alone(who, "strict", Seccomp::On, &sh);
    assert_code(&o, 0);
    let (entries, rest) = ordinary(&o);
    assert!(entries > 0, "{}", stdout(&o));
    assert_eq!(rest, ORDINARY_OUTPUT, "stderr: {}", stderr(&o));
    // The check notices a policy that breaks programs: deny getdents64 and ls cannot list /.
    let dir = Scratch::new("ordinary");
    let broken = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  seccomp:\n    deny:\n      - syscalls: [getdents64]\n",
    );
    let o = run_alone(
        who,
        &broken,
        Seccomp::On,
        &["/bin/sh", "-c", "ls / | wc -l"],
    );
    assert_eq!(stdout(&o), "0\n");
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
});

both!(an_imported_oci_profile_is_merged_and_enforced, |who| {
    let test = "an_imported_oci_profile_is_merged_and_enforced";
    if !host_can_probe(test) {
        return;
    }
    if !std::path::Path::new(CONTAINERS_JSON).exists() {
        skip(test, &format!("{CONTAINERS_JSON} is missing"));
        return;
    }
    // The import's rules under the profile's own: its `allow` lifts an imported deny
    // (vmsplice), its `deny` wins (getppid, with an errno of its own).
    let dir = Scratch::new("import");
    let profile = dir.write(
        "p.yaml",
        &format!(
            "name: imported\nlayers:\n  seccomp:\n    import: {CONTAINERS_JSON}\n    \
             allow: [vmsplice]\n    deny:\n      - syscalls: [getppid]\n        \
             action: errno EACCES\n"
        ),
    );
    let o = run_alone(
        who,
        &profile,
        Seccomp::On,
        &["/bin/sh", "-c", "ls / | wc -l"],
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).trim().parse::<u32>().unwrap_or(0) > 0,
        "{}",
        stdout(&o)
    );
    let names = [
        "move_pages",
        "socket_netlink_audit",
        "vmsplice",
        "getppid",
        "unshare_newuser",
        "ptrace",
        "mount",
        "getpid",
        "socket_unix",
    ];
    let imported = probe(who, &profile, Seccomp::On, &names);
    // The shipped policy, as the control: it lets move_pages, the audit socket and getppid
    // reach the kernel.
    let shipped = probe(who, "strict", Seccomp::On, &names);
    let want = [
        // The import's SCMP_ACT_ERRNO list.
        ("move_pages", "EPERM", "EINVAL"),
        // The import's argument rule: socket(AF_NETLINK, .., NETLINK_AUDIT) → errno 22.
        ("socket_netlink_audit", "EINVAL", "ok|EPROTONOSUPPORT"),
        ("vmsplice", "EBADF", "EBADF"),
        ("getppid", "EACCES", "ok"),
        // The import allows these; the always-blocked edges still hold.
        ("unshare_newuser", "EPERM", "EPERM"),
        ("ptrace", "EPERM", "EPERM"),
        ("mount", "EPERM", "EPERM"),
        ("getpid", "ok", "ok"),
        ("socket_unix", "ok", "ok"),
    ];
    for (name, with_import, with_shipped) in want {
        assert_eq!(imported[name], with_import, "{name}: {imported:?}");
        assert!(
            with_shipped.split('|').any(|w| w == shipped[name]),
            "{name}: {shipped:?}"
        );
    }
});

/// Write `yaml` to a profile, run `lasagna check` on it, return (path, exit code, stderr).
fn check(dir: &Scratch, name: &str, yaml: &str) -> (String, Option<i32>, String) {
    let path = dir.write(name, yaml);
    let o = run(As::Root, &["check", &path]);
    (path, o.status.code(), stderr(&o))
}

#[test]
fn bad_policies_are_refused_with_their_location() {
    let dir = Scratch::new("check");
    let cases = [
        (
            "layers:\n  seccomp:\n    allow:\n      - execve\n      - opne\n",
            "5:9",
            "unknown syscall \"opne\" (did you mean \"open\"?)",
            "layers:\n  seccomp:\n    allow:\n      - execve\n      - open\n",
        ),
        (
            "layers:\n  seccomp:\n    default-action: errno EPRM\n    allow: [\"@system-service\"]\n",
            "3:21",
            "unknown errno name \"EPRM\"",
            "layers:\n  seccomp:\n    default-action: errno EPERM\n    allow: [\"@system-service\"]\n",
        ),
        (
            "layers:\n  seccomp:\n    allow: [\"@system-service\"]\n    deny:\n      - syscalls: [getpid]\n        action: kill-everyone\n",
            "6:17",
            "unknown seccomp action \"kill-everyone\"",
            "layers:\n  seccomp:\n    allow: [\"@system-service\"]\n    deny:\n      - syscalls: [getpid]\n        action: kill-process\n",
        ),
        (
            "layers:\n  seccomp:\n    allow:\n      - read\n      - write\n",
            "4:9",
            "seccomp policy does not allow execve",
            "layers:\n  seccomp:\n    allow:\n      - read\n      - write\n      - execve\n",
        ),
    ];
    for (i, (bad, loc, msg, good)) in cases.into_iter().enumerate() {
        let (path, code, err) = check(&dir, &format!("bad{i}.yaml"), bad);
        assert_eq!(code, Some(1), "{path}: {err}");
        assert!(
            err.contains(&format!("{path}:{loc}: {msg}")),
            "want {path}:{loc}: {msg} in: {err}"
        );
        // The same profile, corrected, passes: the error is about that one entry.
        let (path, code, err) = check(&dir, &format!("good{i}.yaml"), good);
        assert_eq!(code, Some(0), "{path}: {err}");
    }
}

/// `Seccomp:` and `Seccomp_filters:` of this test process: the payload inherits its filters.
fn own_filters() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// `Key:\tvalue` lines → map.
fn status_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

both!(report_agrees_with_proc_status, |who| {
    let dir = Scratch::new("report");
    let _ = std::process::Command::new("chmod")
        .arg("0777")
        .arg(dir.path())
        .status();
    let base = own_filters();
    // The payload's own status, then its parent's: lasagna's init, which installs a filter
    // of its own after forking the payload. init is not dumpable, but /proc/PID/status
    // stays readable.
    let script = "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status; \
                  echo init; grep -E '^Seccomp(_filters)?:' /proc/$PPID/status; sleep 0.2";
    for seccomp in [Seccomp::On, Seccomp::Off] {
        let report = dir.path().join(format!("report-{seccomp:?}.json"));
        let report = report.to_str().unwrap();
        let o = run_with(
            who,
            "strict",
            false,
            seccomp,
            &["--report", report],
            &["/bin/sh", "-c", script],
        );
        assert_code(&o, 0);
        let out = stdout(&o);
        let (payload, init) = out.split_once("init\n").expect("two parts");
        let (payload, init) = (status_fields(payload), status_fields(init));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        let layer = json["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == "seccomp")
            .unwrap();
        let observed = &json["observed"]["status"];
        let (outcome, mode, filters) = match seccomp {
            Seccomp::On => ("applied", "2", base + 1),
            Seccomp::Off => ("skipped", if base > 0 { "2" } else { "0" }, base),
        };
        assert_eq!(layer["outcome"], outcome, "{json}");
        assert_eq!(payload["Seccomp"], mode, "{out}");
        assert_eq!(payload["Seccomp_filters"], filters.to_string(), "{out}");
        assert_eq!(init["Seccomp"], mode, "{out}");
        assert_eq!(init["Seccomp_filters"], filters.to_string(), "{out}");
        // The report's claim is what the kernel shows.
        for key in ["Seccomp", "Seccomp_filters", "NoNewPrivs"] {
            assert_eq!(observed[key], payload[key].as_str(), "{key}: {json}");
        }
    }
    // With every layer on, init is pid 1 of the sandbox's pid namespace.
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "grep -E '^Seccomp:' /proc/self/status /proc/1/status",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "/proc/self/status:Seccomp:\t2\n/proc/1/status:Seccomp:\t2\n"
    );
});
