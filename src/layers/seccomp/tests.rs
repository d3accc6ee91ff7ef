//! Pure tests of validation and code generation, and forked-child tests that install the
//! filter and make the calls on the real kernel.

use crate::types::{LayerSection, Merge};
use std::ffi::CString;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use std::collections::BTreeSet;
use std::path::Path;

use nix::errno::Errno;
use seccompiler::{BpfProgram, SeccompAction};
use serde::Deserialize;

use super::plan::{IPPROTO_MPTCP, TIOCLINUX, TIOCSTI};
use super::*;
use crate::launch::Decision;
use crate::sys::seccomp::{in_child, raw_syscall};
use crate::types::{Loc, ProfileError, Requirement};

const DEFAULT_PROFILE: &str = include_str!("../../../profiles/seccomp-default.yaml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[allow(dead_code)]
    name: String,
    #[allow(dead_code)]
    description: String,
    layers: Layers,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Layers {
    seccomp: Section,
}

fn section(yaml: &str) -> Section {
    serde_saphyr::from_str(yaml).expect("section parses")
}

fn policy(yaml: &str) -> Result<Config, ProfileError> {
    validate_for(&section(yaml), Path::new("/"), Arch::X86_64)
}

fn default_section() -> Section {
    let file: ProfileFile = serde_saphyr::from_str(DEFAULT_PROFILE).expect("default profile");
    file.layers.seccomp
}

fn default_prepared() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| {
        let policy = default_section()
            .validate(Path::new("/"))
            .expect("default validates");
        prepare(&policy, false).expect("default compiles")
    })
}

fn nr(name: &str) -> u32 {
    Arch::NATIVE
        .table()
        .nr(name)
        .unwrap_or_else(|| panic!("no syscall {name}"))
}

/// How one call ended in a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Err(Errno),
    Killed(Signal),
    Exit(i32),
}

const EXIT_OK: i32 = 200;
const EXIT_INSTALL_FAILED: i32 = 201;

fn outcome(status: WaitStatus) -> Outcome {
    match status {
        WaitStatus::Exited(_, EXIT_OK) => Outcome::Ok,
        WaitStatus::Exited(_, c) if (1..200).contains(&c) => Outcome::Err(Errno::from_raw(c)),
        WaitStatus::Exited(_, c) => Outcome::Exit(c),
        WaitStatus::Signaled(_, s, _) => Outcome::Killed(s),
        other => panic!("unexpected child status {other:?}"),
    }
}

/// Run `body` in a child, under `filter` when given (no_new_privs set first, as the
/// `process` layer does before seccomp).
fn run(filter: Option<&Prepared>, body: impl FnOnce() -> i32) -> Outcome {
    outcome(in_child(|| {
        if let Some(p) = filter {
            if nix::sys::prctl::set_no_new_privs().is_err() || install(p).is_err() {
                return EXIT_INSTALL_FAILED;
            }
        }
        body()
    }))
}

fn call(filter: Option<&Prepared>, nr: u32, args: [u64; 6]) -> Outcome {
    run(filter, || match raw_syscall(nr as libc::c_long, args) {
        Ok(_) => EXIT_OK,
        Err(e) => e as i32,
    })
}

/// The call gives `want` under `filter` and something else without a filter, so the
/// filter (not the kernel) produced it.
fn assert_blocked(filter: &Prepared, name: &str, nr: u32, args: [u64; 6], want: Outcome) {
    let control = call(None, nr, args);
    let got = call(Some(filter), nr, args);
    assert_eq!(got, want, "{name}{args:x?} under the filter");
    if control == want {
        crate::testing::skip(
            &format!("{name}{args:x?}"),
            &format!("the kernel itself answers {control:?}: no control"),
        );
    }
}

const NEG1: u64 = u64::MAX;
/// ioctl FIONREAD (libc types it differently on glibc and musl).
const FIONREAD: u64 = 0x541B;
const EPERM: Outcome = Outcome::Err(Errno::EPERM);
const SIGSYS: Outcome = Outcome::Killed(Signal::SIGSYS);

// ---------------------------------------------------------------------------------------------
// Validation

#[test]
fn unknown_syscall_is_located_with_a_suggestion() {
    let err = policy("allow:\n  - read\n  - opne\n").unwrap_err();
    assert_eq!(
        err.message,
        "unknown syscall \"opne\" (did you mean \"open\"?)"
    );
    assert_eq!(err.loc, Some(Loc::at(3, 5)));
    let err = policy("allow: [\"@basic-io\", \"@sytem-service\"]\n").unwrap_err();
    assert!(
        err.message.contains("did you mean \"@system-service\""),
        "{}",
        err.message
    );
}

#[test]
fn bad_action_is_located() {
    let err = policy("allow: [execve]\ndefault-action: errno EPERMM\n").unwrap_err();
    assert_eq!(err.loc, Some(Loc::at(2, 17)));
    assert!(err.message.contains("EPERMM"));
    let yaml = "allow: [execve]\ndeny:\n  - syscalls: [kill]\n    action: explode\n";
    let err = policy(yaml).unwrap_err();
    assert_eq!(err.loc, Some(Loc::at(4, 13)));
    assert!(policy("allow: [execve]\ndefault-action: errno 38\n").is_ok());
    assert_eq!(
        policy("allow: [execve]\ndefault-action: errno ENOSYS\n")
            .unwrap()
            .default_action,
        SeccompAction::Errno(38)
    );
}

#[test]
fn allow_list_without_execve_is_refused() {
    let err = policy("allow: [read, write]\n").unwrap_err();
    assert!(err.message.contains("execve"));
    let err = policy("allow: [\"@system-service\"]\ndeny:\n  - syscalls: [execve]\n").unwrap_err();
    assert!(err.message.contains("execve"));
    assert!(policy("default-action: allow\n").is_ok());
    assert!(policy("mode: off\n").is_ok());
}

#[test]
fn args_are_checked() {
    let yaml =
        "allow: [execve]\ndeny:\n  - syscalls: [kill]\n    args: [{index: 6, op: eq, value: 1}]\n";
    assert!(policy(yaml).unwrap_err().message.contains("index 6"));
    let yaml = "allow: [execve]\ndeny:\n  - syscalls: [kill]\n    args: [{index: 1, op: masked-eq, value: 1}]\n";
    assert!(policy(yaml).unwrap_err().message.contains("needs a mask"));
    let yaml =
        "allow: [execve]\ndeny:\n  - syscalls: [ioctl]\n    args: [{index: 1, op: eq, value: 0x100005412}]\n";
    assert!(policy(yaml).unwrap_err().message.contains("32-bit"));
    let yaml = "allow: [execve]\nallow-dangerous: [bpf]\n";
    assert!(policy(yaml).unwrap_err().message.contains("bpf"));
}

#[test]
fn other_arch_names_are_left_out_not_refused() {
    let p = policy("allow: [execve, futex_time64, open]\n").unwrap();
    assert!(p.other_arch_names.contains("futex_time64"));
    let a = validate_for(
        &section("allow: [execve, open]\n"),
        Path::new("/"),
        Arch::Aarch64,
    )
    .unwrap();
    assert!(a.other_arch_names.contains("open"));
}

#[test]
fn merge_appends_lists_and_overrides_scalars() {
    let parent = section("allow: [read]\ndefault-action: errno EPERM\n");
    let child = section("mode: best-effort\nallow: [write]\n");
    let merged = Merge::merge(parent, child);
    assert_eq!(merged.mode, Some(Requirement::BestEffort));
    assert_eq!(merged.allow.len(), 2);
    assert_eq!(merged.default_action.unwrap().value, "errno EPERM");
}

#[test]
fn imports_the_containers_profile() {
    let path = Path::new("/usr/share/containers/seccomp.json");
    if !path.exists() {
        crate::testing::skip(
            "imports_the_containers_profile",
            &format!("{} missing", path.display()),
        );
        eprintln!(
            "SKIP imports_the_containers_profile: {} missing",
            path.display()
        );
        return;
    }
    let yaml = "import: seccomp.json\nallow: [acct]\n";
    let p = validate_for(
        &section(yaml),
        Path::new("/usr/share/containers"),
        Arch::X86_64,
    )
    .unwrap();
    assert_eq!(p.default_action, SeccompAction::Errno(38));
    assert!(p.allowed.contains_key(&nr("read")));
    // personality is allowed only for listed values; bpf is denied (no CAP_SYS_ADMIN).
    assert!(p.allow_ifs.iter().any(|r| r.nr == nr("personality")));
    assert!(p.denies.iter().any(|r| r.nr == nr("bpf")));
    // the profile's own allow lifts the imported deny of acct
    assert!(!p.denies.iter().any(|r| r.nr == nr("acct")));
    let prog = prepare(&p, false).unwrap();
    let x = Arch::X86_64.audit_arch();
    let eval = |name: &str, args| bpf::evaluate(prog.program(), x, nr(name), args).0;
    let allow = u32::from(SeccompAction::Allow);
    assert_eq!(eval("read", [0; 6]), allow);
    assert_eq!(
        eval("personality", [8, 0, 0, 0, 0, 0]),
        u32::from(SeccompAction::Errno(1))
    );
    assert_eq!(eval("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), allow);
    assert_eq!(eval("bpf", [0; 6]), u32::from(SeccompAction::Errno(1)));
    assert_eq!(
        eval("open_tree_attr", [0; 6]),
        u32::from(SeccompAction::Errno(1))
    );
    assert!(explain(&p).iter().any(|l| l.contains("seccomp.json")));
}

#[test]
fn import_errors_point_at_the_import_key() {
    let yaml = "allow: [execve]\nimport: /nonexistent.json\n";
    let err = policy(yaml).unwrap_err();
    assert_eq!(err.loc, Some(Loc::at(2, 9)));
}

// ---------------------------------------------------------------------------------------------
// Program layout (evaluated by the emulator in bpf.rs)

#[test]
fn plain_allowed_calls_read_no_arguments() {
    let policy = validate_for(&default_section(), Path::new("/"), Arch::X86_64).unwrap();
    let prog = prepare(&policy, true).unwrap();
    let x = Arch::X86_64.audit_arch();
    // The edges with argument checks: these calls cannot be in the kernel's allow cache.
    let checked: BTreeSet<u32> = ["ioctl", "clone", "socket", "personality"]
        .iter()
        .chain(Dangerous::SetuidFiles.syscalls())
        // openat2 is refused whole (ENOSYS), without reading its arguments.
        .filter(|n| **n != "openat2")
        .filter_map(|n| Arch::X86_64.table().nr(n))
        .collect();
    for &n in policy.allowed.keys() {
        let (ret, read_args) = bpf::evaluate(prog.program(), x, n, [0; 6]);
        if checked.contains(&n) {
            assert!(read_args, "nr {n} should check its arguments");
        } else if ret == u32::from(SeccompAction::Allow) {
            assert!(
                !read_args,
                "nr {n} is allowed but reads arguments: not cacheable"
            );
        }
    }
    assert!(prog.len() < 600, "{} instructions", prog.len());
}

#[test]
fn emulated_edges_and_fallbacks() {
    let prog = default_prepared();
    let x = Arch::NATIVE.audit_arch();
    let eval = |name: &str, args| bpf::evaluate(prog.program(), x, nr(name), args).0;
    let eperm = u32::from(SeccompAction::Errno(1));
    assert_eq!(eval("ioctl", [0, TIOCSTI | 1 << 32, 0, 0, 0, 0]), eperm);
    assert_eq!(
        eval("ioctl", [0, FIONREAD, 0, 0, 0, 0]),
        u32::from(SeccompAction::Allow)
    );
    assert_eq!(
        eval("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        u32::from(SeccompAction::Allow)
    );
    assert_eq!(eval("clone3", [0; 6]), u32::from(SeccompAction::Errno(38)));
    assert_eq!(eval("reboot", [0; 6]), eperm);
    // beyond the table: ENOSYS, as from an older kernel
    let (ret, _) = bpf::evaluate(prog.program(), x, 1000, [0; 6]);
    assert_eq!(ret, u32::from(SeccompAction::Errno(38)));
}

// ---------------------------------------------------------------------------------------------
// The dangerous edges on the real kernel

#[test]
fn edges_without_arguments_are_blocked() {
    let f = default_prepared();
    let cases: &[(&str, [u64; 6])] = &[
        ("io_uring_setup", [0, 0, 0, 0, 0, 0]),
        ("io_uring_enter", [NEG1, 0, 0, 0, 0, 0]),
        ("io_uring_register", [NEG1, 0, 0, 0, 0, 0]),
        ("unshare", [0, 0, 0, 0, 0, 0]),
        ("setns", [NEG1, 0, 0, 0, 0, 0]),
        ("mount", [0, 0, 0, 0, 0, 0]),
        ("umount2", [0, 0, 0, 0, 0, 0]),
        ("pivot_root", [0, 0, 0, 0, 0, 0]),
        ("chroot", [0, 0, 0, 0, 0, 0]),
        ("fsopen", [0, 0, 0, 0, 0, 0]),
        ("fsmount", [NEG1, 0, 0, 0, 0, 0]),
        ("fsconfig", [NEG1, 0, 0, 0, 0, 0]),
        ("fspick", [NEG1, 0, 0, 0, 0, 0]),
        ("open_tree", [NEG1, 0, 0, 0, 0, 0]),
        ("open_tree_attr", [NEG1, 0, 0, 0, 0, 0]),
        ("move_mount", [NEG1, 0, NEG1, 0, 0, 0]),
        ("mount_setattr", [NEG1, 0, 0, 0, 0, 0]),
        ("keyctl", [0xffff, 0, 0, 0, 0, 0]),
        ("add_key", [0, 0, 0, 0, 0, 0]),
        ("request_key", [0, 0, 0, 0, 0, 0]),
        ("bpf", [0xffff, 0, 0, 0, 0, 0]),
        ("perf_event_open", [0, 0, NEG1, NEG1, 0, 0]),
        ("userfaultfd", [0xffff_ffff, 0, 0, 0, 0, 0]),
        ("ptrace", [0xffff, 0, 0, 0, 0, 0]),
        ("process_vm_readv", [0x7fff_ffff, 0, 0, 0, 0, 0]),
        ("process_vm_writev", [0x7fff_ffff, 0, 0, 0, 0, 0]),
        ("kexec_load", [0, 0, 0, 0xffff_ffff, 0, 0]),
        ("kexec_file_load", [NEG1, NEG1, 0, 0, 0xffff_ffff, 0]),
        ("init_module", [0, 0, 0, 0, 0, 0]),
        ("finit_module", [NEG1, 0, 0, 0, 0, 0]),
        ("delete_module", [0, 0, 0, 0, 0, 0]),
        ("open_by_handle_at", [NEG1, 0, 0, 0, 0, 0]),
        ("name_to_handle_at", [NEG1, 0, 0, 0, 0, 0]),
    ];
    for &(name, args) in cases {
        assert_blocked(f, name, nr(name), args, EPERM);
    }
}

#[test]
fn edges_stay_blocked_when_listed_in_allow() {
    let p = section("allow: [\"@system-service\", mount, bpf, io_uring_setup, unshare]\n")
        .validate(Path::new("/"))
        .unwrap();
    assert!(explain(&p)
        .iter()
        .any(|l| l.contains("blocked as dangerous: ")));
    let f = prepare(&p, false).unwrap();
    for (name, args) in [
        ("mount", [0; 6]),
        ("bpf", [0xffff, 0, 0, 0, 0, 0]),
        ("unshare", [0; 6]),
    ] {
        assert_eq!(call(Some(&f), nr(name), args), EPERM, "{name}");
    }
    assert_eq!(call(Some(&f), nr("io_uring_setup"), [0; 6]), EPERM);
}

#[test]
fn io_uring_opt_in_lifts_only_io_uring() {
    let p = section("allow: [\"@system-service\"]\nallow-dangerous: [io_uring]\n")
        .validate(Path::new("/"))
        .unwrap();
    let f = prepare(&p, false).unwrap();
    let control = call(None, nr("io_uring_setup"), [0; 6]);
    assert_eq!(call(Some(&f), nr("io_uring_setup"), [0; 6]), control);
    assert_eq!(call(Some(&f), nr("bpf"), [0xffff, 0, 0, 0, 0, 0]), EPERM);
}

#[test]
fn clone_with_any_namespace_flag_is_blocked() {
    let f = default_prepared();
    let flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
        0x80, // CLONE_NEWTIME
    ];
    for flag in flags {
        // CLONE_SIGHAND without CLONE_VM: the kernel says EINVAL before creating anything.
        let bad = (flag | libc::CLONE_SIGHAND) as u64;
        assert_blocked(f, "clone", nr("clone"), [bad, 0, 0, 0, 0, 0], EPERM);
        assert_blocked(
            f,
            "clone",
            nr("clone"),
            [bad | 1 << 32, 0, 0, 0, 0, 0],
            EPERM,
        );
    }
    // A plain fork-style clone still works: the child exits at once.
    let status = run(Some(f), || {
        match raw_syscall(
            nr("clone") as libc::c_long,
            [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
        ) {
            Ok(0) => 0, // the grandchild: exits via _exit in in_child... with code 0
            Ok(pid) => {
                match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
                    Ok(WaitStatus::Exited(_, 0)) => EXIT_OK,
                    _ => 3,
                }
            }
            Err(e) => e as i32,
        }
    });
    assert_eq!(status, Outcome::Ok);
}

#[test]
fn profile_deny_rules_with_arguments_and_actions() {
    let yaml = "allow: [\"@system-service\"]\n\
                deny:\n\
                \x20 - syscalls: [getppid]\n\
                \x20   action: errno EACCES\n\
                \x20 - syscalls: [kill]\n\
                \x20   action: kill-process\n\
                \x20   args: [{index: 1, op: eq, value: 10}]\n\
                allow-if:\n\
                \x20 - syscalls: [acct]\n\
                \x20   args: [{index: 0, op: eq, value: 0}]\n";
    let p = section(yaml).validate(Path::new("/")).unwrap();
    let f = prepare(&p, false).unwrap();
    assert_blocked(
        &f,
        "getppid",
        nr("getppid"),
        [0; 6],
        Outcome::Err(Errno::EACCES),
    );
    let me = std::process::id() as u64;
    // kill(test process, 0) passes, kill(self, SIGUSR1) kills the process
    assert_eq!(call(Some(&f), nr("kill"), [me, 0, 0, 0, 0, 0]), Outcome::Ok);
    let got = run(Some(&f), || {
        let pid = nix::unistd::getpid().as_raw() as u64;
        let _ = raw_syscall(nr("kill") as libc::c_long, [pid, 10, 0, 0, 0, 0]);
        EXIT_OK
    });
    assert_eq!(got, SIGSYS);
    // acct(NULL) reaches the kernel; acct("/x") does not
    assert_eq!(
        call(Some(&f), nr("acct"), [0; 6]),
        call(None, nr("acct"), [0; 6])
    );
    assert_eq!(call(Some(&f), nr("acct"), [1, 0, 0, 0, 0, 0]), EPERM);
}

#[test]
fn clone3_answers_enosys() {
    assert_blocked(
        default_prepared(),
        "clone3",
        nr("clone3"),
        [0; 6],
        Outcome::Err(Errno::ENOSYS),
    );
}

#[test]
fn tiocsti_and_tioclinux_are_blocked_on_the_low_32_bits() {
    let f = default_prepared();
    for cmd in [TIOCSTI, TIOCLINUX] {
        assert_blocked(f, "ioctl", nr("ioctl"), [NEG1, cmd, 0, 0, 0, 0], EPERM);
        assert_blocked(
            f,
            "ioctl",
            nr("ioctl"),
            [NEG1, cmd | 1 << 32, 0, 0, 0, 0],
            EPERM,
        );
    }
    // other ioctls reach the kernel
    let fionread = call(Some(f), nr("ioctl"), [NEG1, FIONREAD, 0, 0, 0, 0]);
    assert_eq!(fionread, Outcome::Err(Errno::EBADF));
}

#[test]
fn personality_only_queries_and_the_default() {
    let f = default_prepared();
    assert_blocked(
        f,
        "personality",
        nr("personality"),
        [8, 0, 0, 0, 0, 0],
        EPERM,
    );
    assert_blocked(
        f,
        "personality",
        nr("personality"),
        [0x0040000, 0, 0, 0, 0, 0],
        EPERM,
    );
    assert_eq!(
        call(Some(f), nr("personality"), [0xffff_ffff, 0, 0, 0, 0, 0]),
        Outcome::Ok
    );
    assert_eq!(
        call(Some(f), nr("personality"), [0, 0, 0, 0, 0, 0]),
        Outcome::Ok
    );
}

#[test]
fn vsock_and_mptcp_sockets() {
    let vsock = [libc::AF_VSOCK as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
    assert_blocked(default_prepared(), "socket", nr("socket"), vsock, EPERM);
    let mptcp = [
        libc::AF_INET as u64,
        libc::SOCK_STREAM as u64,
        IPPROTO_MPTCP,
        0,
        0,
        0,
    ];
    let mptcp6 = [
        libc::AF_INET6 as u64,
        libc::SOCK_STREAM as u64,
        IPPROTO_MPTCP,
        0,
        0,
        0,
    ];
    let policy = default_section().validate(Path::new("/")).unwrap();
    let with_landlock = prepare(&policy, true).unwrap();
    let refused = Outcome::Err(Errno::EPROTONOSUPPORT);
    assert_blocked(&with_landlock, "socket", nr("socket"), mptcp, refused);
    assert_blocked(&with_landlock, "socket", nr("socket"), mptcp6, refused);
    // without Landlock TCP rules MPTCP is left alone; plain TCP always works
    assert_eq!(
        call(Some(default_prepared()), nr("socket"), mptcp),
        call(None, nr("socket"), mptcp)
    );
    let tcp = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
    assert_eq!(call(Some(&with_landlock), nr("socket"), tcp), Outcome::Ok);
}

#[test]
fn x32_syscalls_kill() {
    let getpid_x32 = nr("getpid") | bpf::X32_SYSCALL_BIT;
    let control = call(None, getpid_x32, [0; 6]);
    eprintln!("x32 getpid without a filter: {control:?}");
    assert_eq!(call(Some(default_prepared()), getpid_x32, [0; 6]), SIGSYS);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_entry_kills() {
    let got = run(Some(default_prepared()), || {
        crate::sys::seccomp::int80_syscall(20); // i386 getpid
        EXIT_OK
    });
    assert_eq!(got, SIGSYS);
}

// ---------------------------------------------------------------------------------------------
// init's filter

#[test]
fn init_filter_reaps_and_signals_but_opens_nothing() {
    let init = prepare_init().unwrap();
    let got = run(None, || {
        // The payload is forked before init installs its filter (filters are inherited).
        let child = match raw_syscall(libc::SYS_fork, [0; 6]) {
            Ok(0) => loop {
                let _ = raw_syscall(libc::SYS_pause, [0; 6]);
            },
            Ok(pid) => nix::unistd::Pid::from_raw(pid as i32),
            Err(_) => return 10,
        };
        if nix::sys::prctl::set_no_new_privs().is_err() || install(&init).is_err() {
            return EXIT_INSTALL_FAILED;
        }
        if nix::sys::signal::kill(child, Signal::SIGTERM).is_err() {
            return 11;
        }
        match nix::sys::wait::waitpid(child, None) {
            Ok(WaitStatus::Signaled(_, Signal::SIGTERM, _)) => {}
            _ => return 12,
        }
        let path = c"/etc/hostname";
        match raw_syscall(
            libc::SYS_openat,
            [libc::AT_FDCWD as u64, path.as_ptr() as u64, 0, 0, 0, 0],
        ) {
            Err(Errno::EPERM) => {}
            _ => return 13,
        }
        match raw_syscall(libc::SYS_fork, [0; 6]) {
            Err(Errno::EPERM) => {}
            _ => return 14,
        }
        EXIT_OK
    });
    assert_eq!(got, Outcome::Ok);
}

// ---------------------------------------------------------------------------------------------
// Real programs under the shipped profile

/// Exec `argv` in a child under `filter`; returns its exit status and stdout.
fn exec_under(filter: &Prepared, argv: &[&str]) -> (Outcome, String) {
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let status = run(Some(filter), || {
        if nix::unistd::dup2_stdout(&wr).is_err() {
            return 20;
        }
        match nix::unistd::execvp(&args[0], &args) {
            Err(e) => e as i32,
            Ok(never) => match never {},
        }
    });
    drop(wr);
    let mut out = String::new();
    std::fs::File::from(rd).read_to_string(&mut out).unwrap();
    let status = match status {
        Outcome::Err(e) => Outcome::Exit(e as i32),
        other => other,
    };
    (status, out)
}

#[test]
fn shells_coreutils_and_python_run_under_the_default_profile() {
    let f = default_prepared();
    let script = "set -e; d=$(mktemp -d); cp /etc/hostname \"$d/x\"; sort \"$d/x\" >/dev/null; \
                  ls -la / | wc -l >/dev/null; cat /proc/self/status | grep -q Seccomp; \
                  chmod 600 \"$d/x\"; ln -s x \"$d/y\"; stat \"$d/y\" >/dev/null; \
                  rm -r \"$d\"; date +%s >/dev/null; id -u >/dev/null; uname -a >/dev/null; \
                  echo ok";
    let (status, out) = exec_under(f, &["sh", "-c", script]);
    assert_eq!((status, out.trim()), (Outcome::Exit(0), "ok"));
    let (status, out) = exec_under(f, &["sh", "-c", "ls / | wc -l"]);
    assert_eq!(status, Outcome::Exit(0));
    assert!(out.trim().parse::<u32>().unwrap() > 3);
    let py = "import json, os, subprocess, tempfile, threading, socket, hashlib\n\
              t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
              s = socket.socketpair(); s[0].send(b'x'); assert s[1].recv(1) == b'x'\n\
              with tempfile.TemporaryDirectory() as d: open(os.path.join(d, 'f'), 'w').write('x')\n\
              out = subprocess.run(['echo', 'hi'], capture_output=True, check=True).stdout\n\
              print(json.dumps({'sub': out.decode().strip()}))";
    let (status, out) = exec_under(f, &["python3", "-c", py]);
    assert_eq!(status, Outcome::Exit(0), "python3 output: {out}");
    assert_eq!(out.trim(), "{\"sub\": \"hi\"}");
    // and the filter really is there: unshare from the shell fails
    let (status, _) = exec_under(f, &["sh", "-c", "exec unshare -U true 2>/dev/null"]);
    assert_ne!(status, Outcome::Exit(0));
}

#[test]
fn explain_and_doctor_say_something() {
    let policy = default_section().validate(Path::new("/")).unwrap();
    let lines = explain(&policy);
    assert!(
        lines.iter().any(|l| l.contains("always blocked")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("fails with EPERM")),
        "{lines:?}"
    );
    for line in &lines {
        eprintln!("explain: {line}");
    }
    let facts = doctor();
    for (k, v) in &facts {
        eprintln!("doctor: {k}: {v}");
    }
    assert!(facts.iter().any(|(k, _)| k == "kernel.io_uring_disabled"));
    assert_eq!(
        plan(
            &policy,
            policy.mode,
            &crate::host::Host::probe(crate::host::Needs::default())
        ),
        Decision::Apply
    );
}

// ---------------------------------------------------------------------------------------------
// Figures: cargo test --release -- --ignored --nocapture bench_figures

fn loop_ns(filter: Option<&Prepared>, name: &str, args: [u64; 6]) -> f64 {
    let (rd, wr) = nix::unistd::pipe().unwrap();
    let n = nr(name) as libc::c_long;
    let iters = 2_000_000u32;
    let st = run(filter, || {
        let start = Instant::now();
        for _ in 0..iters {
            let _ = raw_syscall(n, args);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
        let _ = nix::unistd::write(&wr, format!("{ns}").as_bytes());
        EXIT_OK
    });
    assert_eq!(st, Outcome::Ok);
    drop(wr);
    let mut s = String::new();
    std::fs::File::from(rd).read_to_string(&mut s).unwrap();
    s.parse().unwrap()
}

#[test]
#[ignore = "prints timing figures"]
fn bench_figures() {
    let t = Instant::now();
    let runs = 200u32;
    for _ in 0..runs {
        let s = default_section();
        let p = s.validate(Path::new("/")).unwrap();
        std::hint::black_box(prepare(&p, true).unwrap());
    }
    let compile = t.elapsed() / runs;
    let f = default_prepared();

    // seccompiler's own linear chain for the same plain allow-list, for comparison.
    let policy = default_section().validate(Path::new("/")).unwrap();
    let rules = policy
        .allowed
        .keys()
        .map(|&n| (i64::from(n), Vec::new()))
        .collect();
    let linear: BpfProgram = seccompiler::SeccompFilter::new(
        rules,
        SeccompAction::Errno(1),
        SeccompAction::Allow,
        seccompiler::TargetArch::x86_64,
    )
    .unwrap()
    .try_into()
    .unwrap();
    let linear = Prepared {
        program: linear,
        notifying: None,
    };

    let (rd, wr) = nix::unistd::pipe().unwrap();
    let st = run(None, || {
        let _ = nix::sys::prctl::set_no_new_privs();
        let t = Instant::now();
        let r = install(f);
        let ns = t.elapsed().as_nanos();
        let _ = nix::unistd::write(&wr, format!("{ns}").as_bytes());
        if r.is_ok() {
            EXIT_OK
        } else {
            1
        }
    });
    assert_eq!(st, Outcome::Ok);
    drop(wr);
    let mut install_ns = String::new();
    std::fs::File::from(rd)
        .read_to_string(&mut install_ns)
        .unwrap();

    let fionread = |fd: u64| [fd, FIONREAD, 0, 0, 0, 0];
    let p0 = loop_ns(None, "getppid", [0; 6]);
    let p1 = loop_ns(Some(f), "getppid", [0; 6]);
    let p2 = loop_ns(Some(&linear), "getppid", [0; 6]);
    let i0 = loop_ns(None, "ioctl", fionread(NEG1));
    let i1 = loop_ns(Some(f), "ioctl", fionread(NEG1));
    let i2 = loop_ns(Some(&linear), "ioctl", fionread(NEG1));
    let g0 = loop_ns(None, "getrandom", [0; 6]);
    let g1 = loop_ns(Some(f), "getrandom", [0; 6]);
    let g2 = loop_ns(Some(&linear), "getrandom", [0; 6]);
    eprintln!(
        "default profile: {} BPF instructions (seccompiler linear: {})",
        f.len(),
        linear.len()
    );
    eprintln!("validate + prepare (parse YAML, resolve, compile): {compile:?}");
    eprintln!("install (seccomp SET_MODE_FILTER): {install_ns} ns");
    eprintln!("getppid   ns/call: none {p0:.1}  lasagna {p1:.1}  seccompiler-linear {p2:.1}");
    eprintln!("ioctl(FIONREAD, args checked) ns/call: none {i0:.1}  lasagna {i1:.1}  seccompiler-linear(no arg check) {i2:.1}");
    eprintln!(
        "getrandom(nr 318) ns/call: none {g0:.1}  lasagna {g1:.1}  seccompiler-linear {g2:.1}"
    );
}

/// The supervisor's interpreter gives the errno the kernel gives, for each deny the default
/// filter has (by number, by argument, by entry point), and lets through what it allows.
#[test]
fn the_interpreter_answers_as_the_kernel_does() {
    use crate::sys::seccomp::SeccompData;
    let f = default_prepared();
    let program = f.program();
    let data = |name: &str, args: [u64; 6]| SeccompData {
        nr: nr(name) as i32,
        arch: Arch::NATIVE.audit_arch(),
        instruction_pointer: 0,
        args,
    };
    let denied: &[(&str, [u64; 6])] = &[
        ("ptrace", [0; 6]),
        ("mount", [0; 6]),
        ("ioctl", [NEG1, TIOCSTI, 0, 0, 0, 0]),
        ("ioctl", [NEG1, TIOCLINUX, 0, 0, 0, 0]),
        ("socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
        ("clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        ("clone3", [0; 6]),
        ("keyctl", [0; 6]),
    ];
    for (name, args) in denied {
        let want = call(Some(f), nr(name), *args);
        let errno = notify::errno_of(program, &data(name, *args));
        assert_eq!(
            errno.map(|e| Outcome::Err(Errno::from_raw(e))),
            Some(want),
            "{name}{args:x?}"
        );
    }
    // Allowed: getpid runs under the filter, and the interpreter says ALLOW.
    assert_eq!(call(Some(f), nr("getpid"), [0; 6]), Outcome::Ok);
    assert_eq!(notify::eval(program, &data("getpid", [0; 6])), 0x7fff_0000);
    assert_eq!(
        notify::errno_of(program, &data("ioctl", [NEG1, FIONREAD, 0, 0, 0, 0])),
        None
    );
    // A call through another entry point: the filter kills, and so does the interpreter.
    let i386 = SeccompData {
        nr: 20,
        arch: 0x4000_0003,
        ..SeccompData::default()
    };
    assert_eq!(notify::eval(program, &i386) & 0xffff_0000, 0x8000_0000);
    // The notifying program differs only where the original returns an errno.
    let notifying = notify::notifying(program);
    assert_eq!(notifying.len(), program.len());
    for (name, args) in denied {
        assert_eq!(
            notify::eval(&notifying, &data(name, *args)),
            0x7fc0_0000,
            "{name}"
        );
    }
    assert_eq!(
        notify::eval(&notifying, &data("getpid", [0; 6])),
        0x7fff_0000
    );
    assert_eq!(notify::call_name(&data("ptrace", [0; 6])), "ptrace");
}
