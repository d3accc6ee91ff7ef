//! Unit tests: the section's check, negotiation against every ABI, and the child side in a fork.

use std::ffi::CString;

use nix::errno::Errno;

use super::*;
use crate::launch::Decision;
use crate::sys::landlock::{exit_now, fork_for_test};
use crate::types::{LayerSection, Merge};
use crate::types::{Loc, ProfileError, Requirement};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

fn section(yaml: &str) -> Section {
    serde_saphyr::from_str(yaml).expect("test yaml parses")
}

fn policy(yaml: &str) -> Config {
    section(yaml)
        .validate(std::path::Path::new("/"))
        .expect("test policy validates")
}

fn error(yaml: &str) -> ProfileError {
    section(yaml)
        .validate(std::path::Path::new("/"))
        .expect_err("policy must be rejected")
}

/// Whether the host has at least this ABI (the shared test support decides how loud a
/// skip is).
fn need_abi(test: &str, abi: u32) -> bool {
    crate::testing::need(test, crate::testing::Feature::LandlockAbi(abi))
}

fn armed(policy: &Config, cap: Option<u32>) -> Prepared {
    let (decision, plan) = plan(policy, policy.mode, host_abi(), cap);
    assert!(decision.applies(), "{decision:?}");
    prepare(&plan)
}

/// Fork; the child applies `prepared` and exits with `probe()`'s code (an errno, 0 for
/// success). 250 means the ruleset could not be applied.
fn in_child(prepared: &Prepared, probe: impl FnOnce(&AppliedStatus) -> i32) -> i32 {
    in_child_raw(|| match child_apply(prepared) {
        Ok(status) => probe(&status),
        Err(_) => 250,
    })
}

fn in_child_raw(body: impl FnOnce() -> i32) -> i32 {
    match fork_for_test().expect("fork") {
        ForkResult::Child => exit_now(body()),
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("test child ended with {other:?}"),
        },
    }
}

fn code<T>(r: nix::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e as i32,
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A scratch tree under /tmp: `allowed/f` and `denied/f`.
struct Tree(String);

impl Tree {
    fn new(name: &str) -> Tree {
        let root = format!("/tmp/lasagna-landlock-{}-{name}", std::process::id());
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["allowed", "denied"] {
            std::fs::create_dir_all(format!("{root}/{dir}")).unwrap();
            std::fs::write(format!("{root}/{dir}/f"), b"data").unwrap();
        }
        Tree(root)
    }
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.0)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- validation -------------------------------------------------------------------------

#[test]
fn intents_expand_to_documented_rights() {
    let p = policy("read: [/usr]\nwrite: [/tmp]\nexec: [/usr/bin]\n");
    assert_eq!(p.paths.len(), 3);
    assert_eq!(p.paths[0].access, AccessFs::ReadFile | AccessFs::ReadDir);
    assert!(p.paths[1]
        .access
        .contains(AccessFs::Truncate | AccessFs::MakeReg));
    assert!(p.paths[1].access.contains(read_rights()));
    assert!(!p.paths[1].access.contains(AccessFs::Execute));
    assert_eq!(p.paths[2].access, AccessFs::Execute | AccessFs::ReadFile);
    assert_eq!(p.paths[0].missing, Missing::Error);
}

#[test]
fn rules_on_one_path_merge_and_optional_is_kept_only_if_all_agree() {
    let p = policy(
        "read: [/opt]\nrules:\n  - {path: /opt, access: [execute], optional: true}\n  \
         - {path: /srv, access: [exec, truncate], optional: true}\n",
    );
    assert_eq!(p.paths[0].access, read_rights() | AccessFs::Execute);
    assert_eq!(p.paths[0].missing, Missing::Error);
    assert_eq!(p.paths[1].access, exec_rights() | AccessFs::Truncate);
    assert_eq!(p.paths[1].missing, Missing::Skip);
    let p = policy("allow-missing: true\nread: [/opt]\n");
    assert_eq!(p.paths[0].missing, Missing::Skip);
}

#[test]
fn bad_right_is_located_with_a_suggestion() {
    let e =
        error("read: [/usr]\nrules:\n  - path: /dev/null\n    access: [read-file, wirte-file]\n");
    assert_eq!(e.loc, Some(Loc::at(4, 25)));
    assert!(e.message.contains("\"wirte-file\""), "{e}");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"write-file\"?"));
}

#[test]
fn unknown_far_name_lists_known_ones() {
    let e = error("rules:\n  - {path: /x, access: [everything]}\n");
    assert_eq!(e.loc, Some(Loc::at(2, 25)));
    assert!(e.hint.unwrap().contains("read-file"));
}

#[test]
fn relative_path_is_rejected_at_its_location() {
    let e = error("read: [/usr]\nwrite:\n  - tmp/out\n");
    assert_eq!(e.loc, Some(Loc::at(3, 5)));
    assert!(e.message.contains("relative"), "{e}");
}

#[test]
fn bad_scope_port_and_abi_are_located() {
    let e = error("scope: [abstract-unix-socket, signals]\n");
    assert_eq!(e.loc, Some(Loc::at(1, 31)));
    assert_eq!(e.hint.as_deref(), Some("did you mean \"signal\"?"));
    let e = error("net:\n  connect: [443, 70000]\n");
    assert_eq!(e.loc, Some(Loc::at(2, 18)));
    assert!(e.message.contains("70000"));
    let e = error("abi: 12\n");
    assert_eq!(e.loc, Some(Loc::at(1, 6)));
    let e = error("rules:\n  - {path: /x, access: []}\n");
    assert!(e.message.contains("grants no access"), "{e}");
}

#[test]
fn merge_appends_lists_and_child_overrides() {
    let parent = section("mode: best-effort\nabi: 5\nread: [/usr]\nnet: {connect: [80]}\n");
    let child = section("read: [/etc]\nnet: {connect: [443]}\nscope: [signal]\n");
    let p = Merge::merge(parent, child)
        .validate(std::path::Path::new("/"))
        .unwrap();
    assert_eq!(p.mode, Requirement::BestEffort);
    assert_eq!(p.abi_cap, Some(5));
    let paths: Vec<&str> = p.paths.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/usr", "/etc"]);
    assert_eq!(p.net.unwrap().connect, [80, 443]);
    assert_eq!(p.scopes, Some(Scope::Signal.into()));
}

// ---- negotiation ------------------------------------------------------------------------

#[test]
fn net_rules_below_abi_4_degrade_or_refuse() {
    let p = policy("read: [/]\nnet: {connect: [443]}\n");
    let (d, planned) = plan(&p, Requirement::BestEffort, 7, Some(3));
    match d {
        Decision::Degrade(why) => {
            assert!(why.contains("net rules dropped: ABI 3 < 4"), "{why}");
            assert!(why.contains("abi: 3 caps the host's ABI 7"), "{why}");
        }
        other => panic!("expected degrade, got {other:?}"),
    }
    assert!(planned.handled_net.is_empty());
    assert_eq!(planned.handled_fs, fs_rights_of(3));
    assert!(planned.unrestricted.iter().any(|u| u.contains("ioctl-dev")));
    let (d, _) = plan(&p, Requirement::Required, 7, Some(3));
    match d {
        Decision::Refuse(why) => {
            assert!(why.contains("net rules dropped: ABI 3 < 4"), "{why}");
            assert!(why.contains("raise or remove `abi: 3`"), "{why}");
        }
        other => panic!("expected refuse, got {other:?}"),
    }
    let (d, _) = plan(&p, Requirement::Required, 3, None);
    assert!(
        matches!(d, Decision::Refuse(ref why) if why.contains("Linux 6.7+")),
        "{d:?}"
    );
}

#[test]
fn scopes_and_new_rights_are_named_when_dropped() {
    let p = policy("scope: [signal]\nrules:\n  - {path: /dev, access: [ioctl-dev]}\n");
    let (d, planned) = plan(&p, Requirement::BestEffort, 7, Some(4));
    let Decision::Degrade(why) = d else {
        panic!("{d:?}")
    };
    assert!(why.contains("scopes dropped: ABI 4 < 6"), "{why}");
    assert!(why.contains("ioctl-dev on /dev"), "{why}");
    assert!(planned.paths.is_empty() && planned.scopes.is_empty());
    // The write intent is not a request for rights this ABI lacks.
    let p = policy("write: [/tmp]\n");
    let (d, planned) = plan(&p, Requirement::Required, 7, None);
    assert_eq!(d, Decision::Apply);
    assert!(planned
        .unrestricted
        .iter()
        .any(|u| u.contains("resolve-unix")));
    assert!(!planned.paths[0].access.contains(AccessFs::ResolveUnix));
}

#[test]
fn abi_1_names_refer_as_always_denied() {
    let (_, plan) = plan(&policy("write: [/tmp]\n"), Requirement::BestEffort, 1, None);
    assert!(
        plan.unrestricted
            .iter()
            .any(|u| u.contains("always denied")),
        "{plan:?}"
    );
    assert!(!plan.paths[0].access.contains(AccessFs::Refer));
}

#[test]
fn doctor_reports_the_probed_abi() {
    let facts = doctor();
    assert_eq!(facts[0].0, "landlock abi");
    match crate::sys::landlock::abi_version() {
        Ok(abi) => assert!(facts[0].1.starts_with(&abi.to_string()), "{facts:?}"),
        Err(_) => {
            assert!(facts[0].1.starts_with("unavailable") || facts[0].1.starts_with("unknown"))
        }
    }
    assert_eq!(facts[1].0, "landlock in active lsm list");
}

#[test]
fn no_landlock_refuses_required_and_skips_best_effort() {
    let p = policy("read: [/]\n");
    assert!(matches!(
        plan(&p, Requirement::Required, 0, None).0,
        Decision::Refuse(_)
    ));
    assert!(matches!(
        plan(&p, Requirement::BestEffort, 0, None).0,
        Decision::Skip(_)
    ));
    assert!(matches!(
        plan(&p, Requirement::Off, 7, None).0,
        Decision::Skip(_)
    ));
}

#[test]
fn explain_names_the_gaps() {
    let written = policy("read: [/usr]\nwrite: [/tmp]\nnet: {connect: [443]}\n");
    let text = explain(&written, None).join("\n");
    assert!(text.contains("tcp connect allowed to ports 443;"), "{text}");
    // The plan's ports, when it added one (the proxy's).
    let planned = NetPolicy {
        bind: Vec::new(),
        connect: vec![443, 3128],
    };
    let with_proxy = explain(&written, Some(&planned)).join("\n");
    assert!(
        with_proxy.contains("tcp connect allowed to ports 443, 3128;"),
        "{with_proxy}"
    );
    assert!(text.contains("/usr: read"), "{text}");
    assert!(text.contains("/tmp: write"), "{text}");
    assert!(text.contains("deny inside an allowed tree"), "{text}");
    assert!(text.contains("MPTCP"), "{text}");
    let p = policy("net: {}\n");
    assert!(uses_net_rules(&p));
    assert!(mptcp_gap(&p, &Decision::Skip("off".into())).is_some());
    assert!(mptcp_gap(&p, &Decision::Apply).is_none());
}

// ---- the kernel ------------------------------------------------------------------------

#[test]
fn read_outside_read_paths_is_eacces() {
    if !need_abi("read_outside_read_paths_is_eacces", 1) {
        return;
    }
    let tree = Tree::new("read");
    let p = armed(
        &policy(&format!("read: [{}]\n", tree.path("allowed"))),
        None,
    );
    let inside = cstr(&tree.path("allowed/f"));
    let outside = cstr(&tree.path("denied/f"));
    let open = |path: &CString| {
        code(nix::fcntl::open(
            path.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ))
    };
    assert_eq!(in_child(&p, |_| open(&inside)), 0);
    assert_eq!(in_child(&p, |_| open(&outside)), Errno::EACCES as i32);
}

#[test]
fn write_outside_write_paths_is_eacces() {
    if !need_abi("write_outside_write_paths_is_eacces", 1) {
        return;
    }
    let tree = Tree::new("write");
    let p = armed(
        &policy(&format!("read: [/]\nwrite: [{}]\n", tree.path("allowed"))),
        None,
    );
    let create = |path: String| {
        let path = cstr(&path);
        move |_: &AppliedStatus| {
            code(nix::fcntl::open(
                path.as_c_str(),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ))
        }
    };
    assert_eq!(in_child(&p, create(tree.path("allowed/new"))), 0);
    assert_eq!(
        in_child(&p, create(tree.path("denied/new"))),
        Errno::EACCES as i32
    );
    assert_eq!(
        in_child(&p, create(tree.path("denied/f"))),
        Errno::EACCES as i32
    );
}

#[test]
fn exec_outside_exec_paths_is_eacces() {
    if !need_abi("exec_outside_exec_paths_is_eacces", 1) {
        return;
    }
    let true_bin = cstr("/bin/true");
    let run = |_: &AppliedStatus| match nix::unistd::execv(&true_bin, &[&true_bin]) {
        Err(e) => e as i32,
    };
    let denied = armed(
        &policy("read: [/]\nexec: [/nonexistent-ok]\nallow-missing: true\n"),
        None,
    );
    assert_eq!(in_child(&denied, run), Errno::EACCES as i32);
    let allowed = armed(&policy("read: [/]\nexec: [/usr]\n"), None);
    assert_eq!(
        in_child(&allowed, run),
        0,
        "/bin/true under exec: [/usr] must run"
    );
}

#[test]
fn tcp_connect_outside_connect_ports_is_eacces() {
    if !need_abi("tcp_connect_outside_connect_ports_is_eacces", NET_ABI) {
        return;
    }
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    let p = armed(
        &policy(&format!("net: {{connect: [{}]}}\n", port(&allowed))),
        None,
    );
    assert_eq!(in_child(&p, |_| tcp_connect(port(&allowed))), 0);
    assert_eq!(
        in_child(&p, |_| tcp_connect(port(&denied))),
        Errno::EACCES as i32
    );
    // Without `net`, TCP is not handled.
    let open = armed(&policy("read: [/]\n"), None);
    assert_eq!(in_child(&open, |_| tcp_connect(port(&denied))), 0);
}

fn tcp_connect(port: u16) -> i32 {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = match socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return 200 + e as i32 % 50,
    };
    code(connect(
        fd.as_raw_fd(),
        &SockaddrIn::new(127, 0, 0, 1, port),
    ))
}

#[test]
fn degraded_abi_3_drops_net_but_keeps_files() {
    if !need_abi("degraded_abi_3_drops_net_but_keeps_files", NET_ABI) {
        return;
    }
    let tree = Tree::new("degrade");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = listener.local_addr().unwrap().port();
    let p = policy(&format!(
        "mode: best-effort\nabi: 3\nread: [{}]\nnet: {{connect: [1]}}\n",
        tree.path("allowed")
    ));
    let (d, plan) = plan(&p, p.mode, host_abi(), p.abi_cap);
    assert!(matches!(d, Decision::Degrade(ref why) if why.contains("net rules dropped")));
    let prepared = prepare(&plan);
    let outside = cstr(&tree.path("denied/f"));
    // Files are still confined, the status says partial, and TCP is really open.
    let probe = |s: &AppliedStatus| {
        if s.abi != 3 || s.enforcement != Enforcement::Partial {
            return 100;
        }
        let read = code(nix::fcntl::open(
            outside.as_c_str(),
            OFlag::O_RDONLY,
            Mode::empty(),
        ));
        if read != Errno::EACCES as i32 {
            return 101;
        }
        tcp_connect(other)
    };
    assert_eq!(in_child(&prepared, probe), 0);
}

#[test]
fn abstract_unix_socket_scope_is_eperm() {
    if !need_abi("abstract_unix_socket_scope_is_eperm", SCOPE_ABI) {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("lasagna-landlock-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let connect = |_: &AppliedStatus| {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        use std::os::fd::AsRawFd;
        let Ok(fd) = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        ) else {
            return 200;
        };
        let Ok(addr) = UnixAddr::new_abstract(name.as_bytes()) else {
            return 201;
        };
        code(connect(fd.as_raw_fd(), &addr))
    };
    let scoped = armed(&policy("scope: [abstract-unix-socket]\n"), None);
    assert_eq!(in_child(&scoped, connect), Errno::EPERM as i32);
    let unscoped = armed(&policy("read: [/]\n"), None);
    assert_eq!(in_child(&unscoped, connect), 0);
}

#[test]
fn signal_scope_is_eperm() {
    if !need_abi("signal_scope_is_eperm", SCOPE_ABI) {
        return;
    }
    let mut target = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(target.id() as i32);
    let signal = |_: &AppliedStatus| {
        code(nix::sys::signal::kill(
            pid,
            nix::sys::signal::Signal::SIGCONT,
        ))
    };
    let scoped = armed(&policy("scope: [signal]\n"), None);
    let unscoped = armed(&policy("read: [/]\n"), None);
    let (with, without) = (in_child(&scoped, signal), in_child(&unscoped, signal));
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(with, Errno::EPERM as i32);
    assert_eq!(without, 0);
}

#[test]
fn missing_rule_path_is_an_error_unless_optional() {
    if !need_abi("missing_rule_path_is_an_error_unless_optional", 1) {
        return;
    }
    let missing = "/nonexistent/lasagna-landlock";
    let required = armed(&policy(&format!("read: [/, {missing}]\n")), None);
    let result = in_child_raw(|| match child_apply(&required) {
        Ok(_) => 0,
        Err(e) if e.step == "open rule path" && e.detail == missing.as_bytes() => e.errno as i32,
        Err(_) => 99,
    });
    assert_eq!(result, Errno::ENOENT as i32);
    let optional = armed(
        &policy(&format!(
            "read: [/]\nrules:\n  - {{path: {missing}, access: [read], optional: true}}\n"
        )),
        None,
    );
    let result = in_child_raw(|| match child_apply(&optional) {
        Ok(s)
            if s.skipped_missing == 1
                && s.path_rules == 1
                && s.enforcement == Enforcement::Full =>
        {
            0
        }
        Ok(_) => 98,
        Err(e) => e.errno as i32,
    });
    assert_eq!(result, 0);
}

#[test]
fn file_rule_keeps_only_file_rights() {
    if !need_abi("file_rule_keeps_only_file_rights", 1) {
        return;
    }
    let tree = Tree::new("file");
    let file = tree.path("allowed/f");
    let p = armed(&policy(&format!("read: [{file}]\n")), None);
    let path = cstr(&file);
    let dir = cstr(&tree.path("allowed"));
    let probe = |_: &AppliedStatus| {
        let f = code(nix::fcntl::open(
            path.as_c_str(),
            OFlag::O_RDONLY,
            Mode::empty(),
        ));
        let d = code(nix::fcntl::open(
            dir.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        ));
        if f == 0 && d == Errno::EACCES as i32 {
            0
        } else {
            100 + f
        }
    };
    assert_eq!(in_child(&p, probe), 0);
}

/// `cargo test --release -- --ignored --nocapture bench_open_close`
#[test]
#[ignore = "benchmark"]
fn bench_open_close() {
    if !need_abi("bench_open_close", 1) {
        return;
    }
    let root = format!("/tmp/lasagna-landlock-bench-{}", std::process::id());
    for i in 0..100 {
        std::fs::create_dir_all(format!("{root}/d{i}")).unwrap();
    }
    std::fs::write(format!("{root}/d0/f"), b"x").unwrap();
    let file = cstr(&format!("{root}/d0/f"));
    const N: u32 = 200_000;
    let measure_once = |prepared: Option<&Prepared>| -> f64 {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let code = in_child_raw(|| {
            if let Some(p) = prepared {
                if child_apply(p).is_err() {
                    return 250;
                }
            }
            let start = std::time::Instant::now();
            for _ in 0..N {
                match nix::fcntl::open(
                    file.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => drop(fd),
                    Err(_) => return 251,
                }
            }
            let ns = start.elapsed().as_nanos() as u64;
            match nix::unistd::write(&tx, &ns.to_ne_bytes()) {
                Ok(8) => 0,
                _ => 252,
            }
        });
        assert_eq!(code, 0);
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&rx, &mut buf).unwrap(), 8);
        u64::from_ne_bytes(buf) as f64 / f64::from(N)
    };
    // Best of five runs of N iterations each, every run in a fresh child.
    let measure = |prepared: Option<&Prepared>| -> f64 {
        (0..5)
            .map(|_| measure_once(prepared))
            .fold(f64::INFINITY, f64::min)
    };
    let base = measure(None);
    println!("landlock bench: open+close, no landlock: {base:.0} ns/op");
    for rules in [1, 10, 100] {
        let dirs: Vec<String> = (0..rules).map(|i| format!("{root}/d{i}")).collect();
        let p = armed(&policy(&format!("read: [{}]\n", dirs.join(", "))), None);
        let ns = measure(Some(&p));
        println!(
            "landlock bench: open+close, {rules:>3} rules: {ns:.0} ns/op (+{:.0} ns)",
            ns - base
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
