//! Profile, plan and limit-file tests (pure, temporary directories) and real-kernel
//! tests (root; each prints `SKIP <test>: <reason>` when it cannot run, and fails instead
//! with LASAGNA_TEST_STRICT=1). Kernel tests run one at a time and remove every cgroup
//! they make. Payloads are python3 processes that wait for a go byte on stdin, so they are
//! attached before they run, as the supervisor does.

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::resource::Resource;
use nix::unistd::Pid;

use super::active::read_procs;
use super::plan::{plan_as, Access};
use super::*;
use crate::launch::Decision;
use crate::types::{LayerSection, Merge, Requirement};

static KERNEL: Mutex<()> = Mutex::new(());

fn section(yaml: &str) -> Section {
    serde_saphyr::from_str(yaml).expect("section parses")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lasagna-cg-test-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------
// Profile
// ---------------------------------------------------------------------------------------

#[test]
fn section_parses_validates_and_merges() {
    let s = section(
        "mode: best-effort\nmemory: {max: 256M, high: 200M, swap-max: 0}\npids: {max: 64}\n\
         cpu: {cores: 0.5, weight: 50}\nio: {weight: 200}\nparent: /lasagna\n",
    );
    let spec = s.validate(std::path::Path::new("/")).unwrap();
    assert_eq!(spec.mode, Requirement::BestEffort);
    assert_eq!(spec.limits.memory_max, Some(256 << 20));
    assert_eq!(spec.limits.memory_high, Some(200 << 20));
    assert_eq!(spec.limits.swap_max, Some(0));
    assert_eq!(spec.limits.pids_max, Some(64));
    assert_eq!(spec.limits.cpu_quota_us(), Some(50_000));
    assert_eq!(spec.parent.unwrap().as_str(), "/lasagna");

    let child = section("memory: {max: 1G}\ncpu: {weight: 300}\n");
    let merged = Merge::merge(s, child)
        .validate(std::path::Path::new("/"))
        .unwrap();
    assert_eq!(merged.limits.memory_max, Some(1 << 30));
    assert_eq!(
        merged.limits.memory_high,
        Some(200 << 20),
        "parent's high kept"
    );
    assert_eq!(merged.limits.cpu_cores, Some(0.5));
    assert_eq!(merged.limits.cpu_weight, Some(300));
    assert_eq!(merged.limits.pids_max, Some(64));
}

#[test]
fn bad_values_point_at_the_line() {
    assert!(serde_saphyr::from_str::<Section>("memory: {maxx: 1G}\n").is_err());
    let e = section("pids:\n  max: 1\n")
        .validate(std::path::Path::new("/"))
        .unwrap_err();
    assert_eq!(e.loc.unwrap().line, 2);
    assert!(e.message.contains("pids.max 1"), "{e}");
    let e = section("memory: {max: 12Q}\n")
        .validate(std::path::Path::new("/"))
        .unwrap_err();
    assert!(e.message.contains("12Q"));
    let e = section("memory: {max: 64M, high: 128M}\n")
        .validate(std::path::Path::new("/"))
        .unwrap_err();
    assert!(e.message.contains("above memory.max"), "{e}");
    assert!(section("cpu: {cores: 0}\n")
        .validate(std::path::Path::new("/"))
        .is_err());
    assert!(section("io: {weight: 0}\n")
        .validate(std::path::Path::new("/"))
        .is_err());
    assert!(section("parent: lasagna\n")
        .validate(std::path::Path::new("/"))
        .is_err());
}

// ---------------------------------------------------------------------------------------
// Planned on injected hosts
// ---------------------------------------------------------------------------------------

fn fake_v2(tag: &str, controllers: &str) -> (CgroupHost, PathBuf) {
    let root = tempdir(tag);
    fs::write(root.join("cgroup.controllers"), controllers).unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    fs::write(root.join("cgroup.procs"), "").unwrap();
    let mounts = format!("1 1 0:1 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    (CgroupHost::from_tables(&mounts, "0::/\n"), root)
}

fn spec(yaml: &str) -> Config {
    section(yaml).validate(std::path::Path::new("/")).unwrap()
}

#[test]
fn preflight_picks_v2_when_it_has_the_controllers() {
    let (host, root) = fake_v2("pf-v2", "cpu memory pids io");
    let pre = plan_as(
        &spec("memory: {max: 64M}\npids: {max: 8}\n"),
        &host,
        None,
        &Access::Fixed(true),
    );
    assert_eq!(pre.decision, Decision::Apply);
    assert_eq!(
        pre.plan.unwrap().backend,
        Backend::V2 {
            parent: root.clone()
        }
    );
    let _ = fs::remove_dir_all(root);
}

#[test]
fn preflight_refuses_or_degrades_without_delegation() {
    let (host, root) = fake_v2("pf-deleg", "cpu memory pids");
    let s = spec("memory: {max: 64M}\npids: {max: 8}\ncpu: {cores: 0.5}\n");
    let pre = plan_as(&s, &host, None, &Access::Fixed(false));
    match &pre.decision {
        Decision::Refuse(r) => assert!(
            r.contains("systemd-run --user -p Delegate=yes --scope"),
            "{r}"
        ),
        d => panic!("expected refuse, got {d:?}"),
    }
    let mut best = s.clone();
    best.mode = Requirement::BestEffort;
    let pre = plan_as(
        &best,
        &host,
        Some(Duration::from_secs(10)),
        &Access::Fixed(false),
    );
    assert!(
        matches!(pre.decision, Decision::Degrade(_)),
        "{:?}",
        pre.decision
    );
    assert!(pre.plan.is_none());
    let got: Vec<(Resource, u64)> = pre.fallback.iter().map(|f| (f.resource, f.limit)).collect();
    assert_eq!(
        got,
        vec![
            (Resource::RLIMIT_AS, 64 << 20),
            (Resource::RLIMIT_NPROC, 8),
            (Resource::RLIMIT_CPU, 5)
        ]
    );
    let _ = fs::remove_dir_all(root);
}

#[test]
fn preflight_on_a_v1_host_names_the_chown_fix() {
    let root = tempdir("pf-v1");
    fs::create_dir_all(root.join("memory")).unwrap();
    let mounts = format!(
        "1 1 0:1 / {}/memory rw - cgroup cgroup rw,memory\n",
        root.display()
    );
    let host = CgroupHost::from_tables(&mounts, "4:memory:/\n");
    let pre = plan_as(
        &spec("memory: {max: 64M}\npids: {max: 8}\n"),
        &host,
        None,
        &Access::Fixed(false),
    );
    // The fix names the hierarchy where it is mounted, not where it usually is.
    let m = root.join("memory").display().to_string();
    match &pre.decision {
        Decision::Refuse(r) => assert!(
            r.contains(&format!("mkdir -p {m}/lasagna && chown -R "))
                && r.contains(&format!(" {m}/lasagna; then set cgroups parent: /lasagna)")),
            "{r}"
        ),
        d => panic!("expected refuse, got {d:?}"),
    }
    // A caller in a nested cgroup (a host that limits its processes there) is given a
    // parent below it, in every hierarchy.
    fs::create_dir_all(root.join("memory/a/b")).unwrap();
    let nested = CgroupHost::from_tables(&mounts, "4:memory:/a/b\n");
    let pre = plan_as(
        &spec("memory: {max: 64M}\n"),
        &nested,
        None,
        &Access::Fixed(false),
    );
    match &pre.decision {
        Decision::Refuse(r) => assert!(
            r.contains(&format!("mkdir -p {m}/a/b/lasagna && chown -R "))
                && r.contains("then set cgroups parent: /a/b/lasagna)"),
            "{r}"
        ),
        d => panic!("expected refuse, got {d:?}"),
    }
    // Delegated, but no pids hierarchy: best-effort keeps memory and falls back for pids.
    let mut s = spec("memory: {max: 64M}\npids: {max: 8}\n");
    s.mode = Requirement::BestEffort;
    let pre = plan_as(&s, &host, None, &Access::Fixed(true));
    assert!(matches!(&pre.decision, Decision::Degrade(r) if r.contains("pids")));
    assert_eq!(pre.plan.unwrap().limits.pids_max, None);
    assert_eq!(pre.fallback[0].resource, Resource::RLIMIT_NPROC);
    let _ = fs::remove_dir_all(root);
}

#[test]
fn doctor_needs_name_each_controller_where_it_is_and_whether_it_is_writable() {
    let root = tempdir("needs-v1");
    fs::create_dir_all(root.join("memory")).unwrap();
    let mounts = format!(
        "1 1 0:1 / {}/memory rw - cgroup cgroup rw,memory\n",
        root.display()
    );
    let host = CgroupHost::from_tables(&mounts, "4:memory:/\n");
    let s = spec("memory: {max: 64M}\npids: {max: 8}\n");
    let memory = format!("memory: cgroup v1 {}/memory, ", root.display());
    let lines = |w| super::explain::needs_for(&s, &host, &Access::Fixed(w));
    let got = lines(false);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(!got[0].0, "{got:?}");
    assert_eq!(got[0].1, format!("{memory}not writable by this user"));
    let m = root.join("memory").display().to_string();
    assert!(got[0]
        .2
        .as_ref()
        .unwrap()
        .contains(&format!("mkdir -p {m}/lasagna && chown -R ")));
    // No pids hierarchy: missing whoever asks, and no chown can fix it.
    assert!(!got[1].0, "{got:?}");
    assert!(
        got[1].1.starts_with("pids: no mounted cgroup hierarchy"),
        "{got:?}"
    );
    let got = lines(true);
    assert_eq!(
        got[0],
        (true, format!("{memory}writable by this user"), None)
    );
    assert!(!got[1].0, "{got:?}");
    let _ = fs::remove_dir_all(root);
}

// ---------------------------------------------------------------------------------------
// v2 limit files against a temporary directory
// ---------------------------------------------------------------------------------------

#[test]
fn v2_limit_files_are_written_in_kernel_format() {
    let dir = tempdir("v2-limits");
    for (f, v) in [
        ("memory.max", "max"),
        ("memory.high", "max"),
        ("memory.swap.max", "max"),
        ("pids.max", "max"),
        ("cpu.max", "max 100000"),
        ("cpu.weight", "100"),
        ("io.weight", "default 100"),
    ] {
        fs::write(dir.join(f), v).unwrap();
    }
    let s = spec(
        "memory: {max: 256M, high: 200M, swap-max: 0}\npids: {max: 32}\ncpu: {cores: 1.5, weight: 250}\nio: {weight: 40}\n",
    );
    v2::write_limits(&dir, &s.limits).unwrap();
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("memory.max"), (256u64 << 20).to_string());
    assert_eq!(read("memory.high"), (200u64 << 20).to_string());
    assert_eq!(read("memory.swap.max"), "0");
    assert_eq!(read("pids.max"), "32");
    assert_eq!(read("cpu.max"), "150000 100000");
    assert_eq!(read("cpu.weight"), "250");
    assert_eq!(read("io.weight"), "default 40");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn creation_failure_rolls_back() {
    let (host, root) = fake_v2("v2-rollback", "memory");
    let pre = plan_as(
        &spec("memory: {max: 64M}\n"),
        &host,
        None,
        &Access::Fixed(true),
    );
    fs::write(root.join("cgroup.subtree_control"), "memory").unwrap();
    assert!(matches!(pre.plan.unwrap().backend, Backend::V2 { .. }));
    // Two parents; the second already holds the name, so its mkdir fails after the first.
    let (a, b) = (root.join("a"), root.join("b"));
    fs::create_dir_all(b.join("lasagna-1-rollback")).unwrap();
    fs::create_dir_all(&a).unwrap();
    let plan = Plan {
        backend: Backend::V1 {
            parents: vec![("memory", a.clone()), ("pids", b.clone())],
            tracker_parent: None,
        },
        limits: Limits::default(),
    };
    let err = ActiveCgroup::create_named(&plan, "lasagna-1-rollback").unwrap_err();
    assert!(err.to_string().contains("cannot create cgroup"), "{err}");
    assert!(!a.join("lasagna-1-rollback").exists(), "rolled back");
    let _ = fs::remove_dir_all(root);
}

#[test]
fn names_and_messages() {
    assert_eq!(active::owner_pid("lasagna-1234-deadbeef"), Some(1234));
    assert_eq!(active::owner_pid("lasagna-x-1"), None);
    assert_eq!(active::owner_pid("lasagna-12-"), None);
    assert_eq!(active::owner_pid("other-12-ab"), None);
    let oom = OomKill {
        kills: 1,
        limit: Some(256 << 20),
    };
    assert_eq!(oom.message(), "killed: memory limit 256 MiB reached");
    assert_eq!(v1::weight_to_shares(100), 1024);
    assert_eq!(v1::weight_to_blkio(100), 500);
}

// ---------------------------------------------------------------------------------------
// Real kernel
// ---------------------------------------------------------------------------------------

fn skip(test: &str, why: &str) {
    crate::testing::skip(test, why)
}

fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    p.is_file().then_some(p)
}

/// Host, python, and root; or why the test cannot run.
fn kernel_env(test: &str) -> Option<(CgroupHost, PathBuf)> {
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root");
        return None;
    }
    let Some(py) = python() else {
        skip(test, "needs python3");
        return None;
    };
    let host = CgroupHost::probe();
    if host.layout() == Layout::Absent {
        skip(test, "no cgroup hierarchy mounted");
        return None;
    }
    Some((host, py))
}

fn plan_for(test: &str, host: &CgroupHost, yaml: &str) -> Option<Plan> {
    let pre = plan(&spec(yaml), host, None);
    match pre.decision {
        Decision::Apply => pre.plan,
        d => {
            skip(test, &format!("host cannot apply {yaml:?}: {d:?}"));
            None
        }
    }
}

/// A python payload that waits for one byte on stdin, then runs `code`.
fn payload(py: &Path, code: &str) -> Child {
    let script = format!("import os, sys, time\nsys.stdin.buffer.read(1)\n{code}\n");
    Command::new(py)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn attach_and_release(cg: &ActiveCgroup, child: &mut Child) {
    cg.attach(
        Pid::from_raw(child.id() as i32),
        Placement::NotPlaced,
        false,
    )
    .unwrap();
    child.stdin.take().unwrap().write_all(b"g").unwrap();
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn kernel_fork_bomb_stops_at_pids_max() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_fork_bomb_stops_at_pids_max";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(test, &host, "pids: {max: 16}\n") else {
        return;
    };
    let mut cg = ActiveCgroup::create(&plan).unwrap();
    // Every process keeps forking; the first EAGAIN ends the test with 42.
    let mut child = payload(
        &py,
        "import errno\n\
         while True:\n\
         \x20   try:\n\
         \x20       if os.fork() == 0:\n\
         \x20           time.sleep(60); os._exit(0)\n\
         \x20   except OSError as e:\n\
         \x20       os._exit(42 if e.errno == errno.EAGAIN else 1)\n",
    );
    attach_and_release(&cg, &mut child);
    let st = wait_timeout(&mut child, Duration::from_secs(20)).expect("bomb stopped");
    assert_eq!(st.code(), Some(42), "fork failed with EAGAIN");
    let usage = cg.observe();
    assert!(usage.fork_refusals.unwrap_or(0) >= 1, "{usage:?}");
    assert!(usage.pids_peak.unwrap_or(0) <= 16, "{usage:?}");
    // The host still forks.
    assert!(Command::new("true").status().unwrap().success());
    cg.teardown().unwrap();
}

#[test]
fn kernel_memory_hog_is_oom_killed() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_memory_hog_is_oom_killed";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(test, &host, "memory: {max: 64M}\n") else {
        return;
    };
    let mut cg = ActiveCgroup::create(&plan).unwrap();
    let mut child = payload(&py, "b = bytearray(512 << 20)\nos._exit(0)");
    attach_and_release(&cg, &mut child);
    let st = wait_timeout(&mut child, Duration::from_secs(30)).expect("hog ended");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "SIGKILL by the OOM killer: {st:?}");
    let oom = cg.oom_killed().expect("oom counter");
    assert!(oom.kills >= 1);
    assert_eq!(oom.message(), "killed: memory limit 64 MiB reached");
    let usage = cg.observe();
    let peak = usage.memory_peak_bytes.unwrap();
    assert!(peak <= 64 << 20 && peak > 32 << 20, "{usage:?}");
    cg.teardown().unwrap();
}

#[test]
fn kernel_cpu_quota_holds() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_cpu_quota_holds";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(test, &host, "cpu: {cores: 0.2}\n") else {
        return;
    };
    let mut cg = ActiveCgroup::create(&plan).unwrap();
    // Two busy processes for 1.5 s of wall time.
    let mut child = payload(
        &py,
        "os.fork()\nend = time.time() + 1.5\nwhile time.time() < end: pass\nos._exit(0)",
    );
    let start = Instant::now();
    attach_and_release(&cg, &mut child);
    wait_timeout(&mut child, Duration::from_secs(20)).expect("spinner ended");
    while !cg.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = start.elapsed().as_secs_f64();
    let Some(cpu_us) = cg.observe().cpu_time_usec else {
        skip(
            test,
            "no CPU accounting (cpuacct or v2 cpu.stat) for the cgroup",
        );
        return;
    };
    let cpu = cpu_us as f64 / 1e6;
    eprintln!("cpu quota 0.2: used {cpu:.3} s CPU in {wall:.3} s wall");
    assert!(
        cpu <= 0.2 * wall * 1.2 + 0.05,
        "cpu {cpu} over quota for wall {wall}"
    );
    assert!(cpu >= 0.1 * wall, "the spinner ran ({cpu} s)");
    cg.teardown().unwrap();
}

#[test]
fn kernel_kill_all_reaches_a_double_forked_child() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_kill_all_reaches_a_double_forked_child";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(test, &host, "pids: {max: 32}\n") else {
        return;
    };
    let cg = ActiveCgroup::create(&plan).unwrap();
    // The grandchild leaves the payload's tree (its parent exits) and starts a session.
    let mut child = payload(
        &py,
        "if os.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   if os.fork() == 0:\n\
         \x20       time.sleep(600)\n\
         \x20   os._exit(0)\n\
         time.sleep(600)",
    );
    attach_and_release(&cg, &mut child);
    let dir = cg.dirs()[0].clone();
    let until = Instant::now() + Duration::from_secs(5);
    let mut orphans = Vec::new();
    while orphans.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        orphans = read_procs(&dir)
            .into_iter()
            .filter(|p| {
                *p != child.id() as i32 && ppid(*p).is_some_and(|pp| pp != child.id() as i32)
            })
            .collect();
    }
    assert!(!orphans.is_empty(), "double-forked process found");
    cg.kill_all().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let st = wait_timeout(&mut child, Duration::from_secs(5)).expect("payload killed");
    assert_eq!(st.signal(), Some(9));
    let until = Instant::now() + Duration::from_secs(5);
    while orphans.iter().any(|p| alive(*p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        orphans.iter().all(|p| !alive(*p)),
        "orphan {orphans:?} killed"
    );
    cg.teardown().unwrap();
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Running (not gone, not a zombie waiting for its reaper).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn kernel_v1_creation_failure_rolls_back() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_v1_creation_failure_rolls_back";
    let Some((host, _)) = kernel_env(test) else {
        return;
    };
    if !crate::testing::need(test, crate::testing::Feature::CgroupV1) {
        return;
    }
    let (Some(mem), Some(pids)) = (host.v1_mount("memory"), host.v1_mount("pids")) else {
        return skip(test, "needs v1 memory and pids hierarchies");
    };
    // memory is created and limited, then the pids parent does not exist.
    let plan = Plan {
        backend: Backend::V1 {
            parents: vec![
                ("memory", mem.dir(&mem.own)),
                ("pids", pids.dir("lasagna-test-missing-parent")),
            ],
            tracker_parent: None,
        },
        limits: spec("memory: {max: 64M}\npids: {max: 8}\n").limits,
    };
    let name = format!("lasagna-{}-rollback", std::process::id());
    let err = ActiveCgroup::create_named(&plan, &name).unwrap_err();
    assert!(
        err.to_string().contains("lasagna-test-missing-parent"),
        "{err}"
    );
    assert!(
        !mem.dir(&mem.own).join(&name).exists(),
        "memory dir rolled back"
    );
}

#[test]
fn kernel_200_cycles_leave_nothing() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_200_cycles_leave_nothing";
    let Some((host, _)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(
        test,
        &host,
        "memory: {max: 64M}\npids: {max: 8}\ncpu: {cores: 0.5}\n",
    ) else {
        return;
    };
    let start = Instant::now();
    for _ in 0..200 {
        let cg = ActiveCgroup::create(&plan).unwrap();
        let dirs = cg.dirs().to_vec();
        assert!(dirs.iter().all(|d| d.is_dir()));
        cg.teardown().unwrap();
        assert!(dirs.iter().all(|d| !d.exists()));
    }
    eprintln!("200 create/teardown cycles: {:?}", start.elapsed());
    let mine = format!("lasagna-{}-", std::process::id());
    for parent in sweep_parents(&host, None) {
        for e in fs::read_dir(&parent).unwrap().flatten() {
            assert!(
                !e.file_name().to_string_lossy().starts_with(&mine),
                "left {:?}",
                e.path()
            );
        }
    }
}

#[test]
fn kernel_sweep_removes_a_dead_supervisors_cgroup() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_sweep_removes_a_dead_supervisors_cgroup";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    // A pid that existed and is gone.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    // The hierarchies a run uses here (a fresh cpuset cgroup has no cpus to attach to).
    let parents: Vec<PathBuf> = sweep_parents(&host, None)
        .into_iter()
        .filter(|p| {
            !p.starts_with("/sys/fs/cgroup/cpuset") && !p.starts_with("/sys/fs/cgroup/devices")
        })
        .collect();
    let name = format!("lasagna-{dead_pid}-5ca1ab1e");
    let mut made = Vec::new();
    for p in &parents {
        fs::create_dir(p.join(&name)).unwrap();
        made.push(p.join(&name));
    }
    // A leftover process inside, as after a supervisor crash.
    let mut left = payload(&py, "time.sleep(600)");
    for d in &made {
        fs::write(d.join("cgroup.procs"), left.id().to_string()).unwrap();
    }
    // A live supervisor's cgroup must survive, even when the pid in its name means nothing
    // here (a supervisor in another pid namespace): it holds the directory's lock.
    let live = parents[0].join(format!("lasagna-{dead_pid}-11ve"));
    fs::create_dir(&live).unwrap();
    let held = fs::File::open(&live).unwrap();
    crate::sys::flock(
        std::os::fd::AsFd::as_fd(&held),
        libc::LOCK_EX | libc::LOCK_NB,
    )
    .unwrap();

    let removed = sweep_stale(&parents);
    for d in &made {
        assert!(removed.contains(d) && !d.exists(), "{} swept", d.display());
    }
    assert!(
        live.exists(),
        "a locked cgroup is live whatever its name says"
    );
    drop(held);
    fs::remove_dir(&live).unwrap();
    use std::os::unix::process::ExitStatusExt;
    let st = wait_timeout(&mut left, Duration::from_secs(5)).expect("leftover killed");
    assert_eq!(st.signal(), Some(9));
}

#[test]
fn kernel_v2_mechanics_on_the_unified_hierarchy() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_v2_mechanics_on_the_unified_hierarchy";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(v2m) = host.v2.clone() else {
        return skip(test, "no v2 hierarchy");
    };
    let parent = v2m.dir(&v2m.own);
    let plan = Plan {
        backend: Backend::V2 {
            parent: parent.clone(),
        },
        limits: Limits::default(),
    };
    let mut cg = ActiveCgroup::create(&plan).unwrap();
    let dir = cg.dirs()[0].clone();
    assert!(cg.clone_into_fd().is_some());
    let mut child = payload(&py, "if os.fork() == 0:\n    os.setsid()\ntime.sleep(600)");
    attach_and_release(&cg, &mut child);
    let own = fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    assert!(
        own.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(cg.name())),
        "{own}"
    );
    let until = Instant::now() + Duration::from_secs(5);
    while read_procs(&dir).len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!cg.is_empty());
    assert!(
        cg.observe().cpu_time_usec.is_some(),
        "cpu.stat without the cpu controller"
    );
    cg.kill_all().unwrap(); // cgroup.kill
    use std::os::unix::process::ExitStatusExt;
    let st = wait_timeout(&mut child, Duration::from_secs(5)).expect("killed");
    assert_eq!(st.signal(), Some(9));
    let until = Instant::now() + Duration::from_secs(5);
    while !cg.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(cg.is_empty(), "cgroup.events populated 0");
    cg.teardown().unwrap();
    assert!(!dir.exists());
}

/// Figures for the v1 attach: one `cgroup.procs` write per hierarchy. Run with
/// `cargo test attach_latency -- --ignored --nocapture`.
#[test]
#[ignore]
fn kernel_attach_latency() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_attach_latency";
    let Some((host, py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(
        test,
        &host,
        "memory: {max: 64M}\npids: {max: 8}\ncpu: {cores: 0.5}\n",
    ) else {
        return;
    };
    let mut times = Vec::new();
    for _ in 0..60 {
        let cg = ActiveCgroup::create(&plan).unwrap();
        let mut child = payload(&py, "");
        let t = Instant::now();
        cg.attach(
            Pid::from_raw(child.id() as i32),
            Placement::NotPlaced,
            false,
        )
        .unwrap();
        times.push(t.elapsed().as_micros());
        drop(child.stdin.take());
        child.wait().unwrap();
        cg.teardown().unwrap();
    }
    times.sort_unstable();
    let slow = times.iter().filter(|t| **t > 2000).count();
    eprintln!(
        "attach (all hierarchies) us: min {} p50 {} p75 {} p90 {} max {}; >2ms: {slow}/{}",
        times[0],
        times[times.len() / 2],
        times[times.len() * 3 / 4],
        times[times.len() * 9 / 10],
        times[times.len() - 1],
        times.len()
    );
}

#[test]
fn kernel_a_child_joins_its_v1_cgroups_by_writing_zero() {
    let _g = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "kernel_a_child_joins_its_v1_cgroups_by_writing_zero";
    let Some((host, _py)) = kernel_env(test) else {
        return;
    };
    let Some(plan) = plan_for(test, &host, "pids: {max: 4}\nmemory: {max: 64M}\n") else {
        return;
    };
    let cg = ActiveCgroup::create(&plan).unwrap();
    let join = cg.join_fds();
    if join.is_empty() {
        // Pure v2 hosts have no v1 hierarchies to join.
        cg.teardown().unwrap();
        crate::testing::need(test, crate::testing::Feature::CgroupV1);
        return;
    }
    // The child writes "0" (itself) into each `tasks` file, then reports its cgroups and
    // how many of 8 forks pids.max refused. No supervisor-side attach happens.
    let (r, w) = nix::unistd::pipe().unwrap();
    let child = match crate::sys::fork(&crate::sys::OneThread::in_test()).unwrap() {
        None => {
            // Its own process group, so the test can end the forks it leaves.
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let mut code = 0;
            for fd in &join {
                if crate::sys::write_all(crate::sys::borrow_raw(*fd), b"0").is_err() {
                    code = 10;
                }
            }
            let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let mut refused = 0u8;
            for _ in 0..8 {
                match crate::sys::fork(&crate::sys::OneThread::in_test()) {
                    Ok(None) => {
                        std::thread::sleep(Duration::from_secs(30));
                        crate::sys::exit_now(0);
                    }
                    Ok(Some(_)) => {}
                    Err(_) => refused += 1,
                }
            }
            let mut report = vec![refused];
            report.extend_from_slice(cgroups.as_bytes());
            let _ = nix::unistd::write(&w, &report);
            crate::sys::exit_now(code);
        }
        Some(child) => child,
    };
    drop(w);
    let mut report = [0u8; 4096];
    let n = nix::unistd::read(r.as_fd(), &mut report).unwrap();
    assert!(n >= 1, "the child reported nothing");
    let status = nix::sys::wait::waitpid(child, None).unwrap();
    // The forks joined only the v1 hierarchies (not the v2 tracker that teardown kills
    // through): end them here.
    let _ = nix::sys::signal::killpg(child, nix::sys::signal::Signal::SIGKILL);
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(child, 0),
        "join failed"
    );
    let cgroups = String::from_utf8_lossy(&report[1..n]);
    for controller in ["pids", "memory"] {
        let line = cgroups
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == controller))
            })
            .unwrap_or_default();
        assert!(
            line.ends_with(cg.name()),
            "{controller} not joined: {cgroups}"
        );
    }
    // 4 pids: the child and three of its forks; the rest were refused.
    assert!(
        report[0] >= 4,
        "pids.max did not hold: {} of 8 forks refused",
        report[0]
    );
    cg.teardown().unwrap();
}

#[test]
fn unenforced_names_what_neither_a_cgroup_nor_a_stand_in_holds() {
    // No cgroup at all: memory.max and pids.max have rlimits; cpu.max has one only with a
    // timeout; weights and memory.high have none.
    let (host, root) = fake_v2("pf-undone", "cpu memory pids io");
    let mut s = spec(
        "memory: {max: 64M, high: 32M}\npids: {max: 8}\ncpu: {cores: 0.5, weight: 50}\nio: {weight: 50}\n",
    );
    s.mode = Requirement::BestEffort;
    let pre = plan_as(&s, &host, None, &Access::Fixed(false));
    assert_eq!(
        super::unenforced(&s.limits, &pre),
        ["memory.high", "cpu.max", "cpu.weight", "io.weight"]
    );
    let pre = plan_as(
        &s,
        &host,
        Some(Duration::from_secs(10)),
        &Access::Fixed(false),
    );
    assert_eq!(
        super::unenforced(&s.limits, &pre),
        ["memory.high", "cpu.weight", "io.weight"]
    );
    // A cgroup with every controller: nothing is undone.
    let pre = plan_as(&s, &host, None, &Access::Fixed(true));
    assert!(super::unenforced(&s.limits, &pre).is_empty());
    // A cgroup without cpu: its limits are left, unless RLIMIT_CPU stands in.
    let (host2, root2) = fake_v2("pf-undone2", "memory pids io");
    let pre = plan_as(&s, &host2, None, &Access::Fixed(true));
    assert_eq!(
        super::unenforced(&s.limits, &pre),
        ["cpu.max", "cpu.weight"]
    );
    let _ = fs::remove_dir_all(root);
    let _ = fs::remove_dir_all(root2);
}
