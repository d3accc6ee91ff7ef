//! Table-driven tests of the plan: each layer's decision for a profile against host
//! variants, `--without` sets and `degrade_dependents`. The hosts are values, not probes;
//! the filesystem layer still walks the real host for the paths a profile binds, so the
//! profiles name only what every Linux host has (or a temporary tree of their own).

use std::time::Duration;

use super::*;
use crate::host::CgroupHost;
use crate::layers::namespaces::Kind;

/// A host that can give everything: Linux 6.12, Landlock ABI 7, every namespace,
/// unprivileged user namespaces, seccomp with every action, no cgroup hierarchy.
fn host(root: bool) -> Host {
    let id = if root { 0 } else { 1000 };
    Host {
        euid: id,
        egid: id,
        is_root: root,
        kernel: "6.12.0".into(),
        arch: std::env::consts::ARCH.into(),
        max_user_namespaces: Some(15000),
        unprivileged_userns_clone: None,
        apparmor_restricts_userns: None,
        container: None,
        legacy_tiocsti: Some(false),
        cap_last_cap: 40,
        time_namespace: true,
        cgroup_namespace: true,
        landlock_abi: 7,
        mount_api: true,
        seccomp: Ok([
            "kill_process",
            "kill_thread",
            "trap",
            "errno",
            "user_notif",
            "trace",
            "log",
            "allow",
        ]
        .map(String::from)
        .to_vec()),
        cgroups: CgroupHost {
            v2: None,
            v1: Vec::new(),
        },
        pasta: Some("/usr/bin/pasta".into()),
        tun: true,
    }
}

/// Host variants, by what they lack.
fn no_userns(h: &mut Host) {
    h.max_user_namespaces = Some(0);
}
fn no_landlock(h: &mut Host) {
    h.landlock_abi = 0;
}
fn landlock_5(h: &mut Host) {
    h.landlock_abi = 5;
}
fn old_kernel(h: &mut Host) {
    h.mount_api = false;
    h.kernel = "5.10.0".into();
}
fn no_seccomp(h: &mut Host) {
    h.seccomp = Err("the kernel has no seccomp (prctl PR_GET_SECCOMP: EINVAL)".into());
}
fn no_time_ns(h: &mut Host) {
    h.time_namespace = false;
}
fn as_is(_: &mut Host) {}
fn no_pasta(h: &mut Host) {
    h.pasta = None;
}
fn no_tun(h: &mut Host) {
    h.tun = false;
}

/// A profile from YAML (written to a file of its own, so that `extends` and relative
/// paths work as for a user's profile).
fn profile(yaml: &str) -> Profile {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    // A directory per profile: tests run in parallel, and one removing a shared directory
    // would race another about to write into it.
    let dir = std::env::temp_dir().join(format!(
        "lasagna-plan-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    let p = crate::profile::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).unwrap();
    p
}

/// What a case expects of one layer: its decision word and a piece of its reason.
type Expect = (Layer, &'static str, &'static str);

struct Case {
    name: &'static str,
    profile: &'static str,
    root: bool,
    host: fn(&mut Host),
    without: &'static [Layer],
    degrade_dependents: bool,
    expect: &'static [Expect],
}

fn word(d: &Decision) -> (&'static str, &str) {
    match d {
        Decision::Apply => ("applied", ""),
        Decision::Degrade(r) => ("degraded", r),
        Decision::Skip(r) => ("skipped", r),
        Decision::Refuse(r) => ("refused", r),
    }
}

const STRICT: &str = "extends: strict\n";
/// Landlock on its own, with a required rule on a path no host has.
const MISSING_RULE: &str = "layers:
  filesystem:
    proc: false
    mounts: [{ro-bind: /usr}]
  landlock:
    mode: required
    read: [/usr, /nonexistent-lasagna-plan]
";

use Layer::*;

const CASES: &[Case] = &[
    Case {
        name: "strict as root on a full host: every layer applies, cgroups as far as the host has them",
        profile: STRICT,
        root: true,
        host: as_is,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Namespaces, "applied", ""),
            (Filesystem, "applied", ""),
            (Cgroups, "degraded", "no cgroup hierarchy is mounted"),
            (Capabilities, "applied", ""),
            (Rlimits, "applied", ""),
            (Process, "applied", ""),
            (Landlock, "applied", ""),
            (Seccomp, "applied", ""),
        ],
    },
    Case {
        name: "strict as a user on a full host",
        profile: STRICT,
        root: false,
        host: as_is,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Namespaces, "applied", ""),
            (Filesystem, "applied", ""),
            (Capabilities, "applied", ""),
            (Landlock, "applied", ""),
            (Seccomp, "applied", ""),
        ],
    },
    Case {
        name: "no Landlock: required Landlock is refused, the rest applies",
        profile: STRICT,
        root: false,
        host: no_landlock,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Landlock, "refused", "not available on this kernel"),
            (Filesystem, "applied", ""),
            (Seccomp, "applied", ""),
        ],
    },
    Case {
        name: "Landlock ABI 5: strict's scopes need 6",
        profile: STRICT,
        root: true,
        host: landlock_5,
        without: &[],
        degrade_dependents: false,
        expect: &[(Landlock, "refused", "scopes dropped: ABI 5 < 6")],
    },
    Case {
        name: "Landlock ABI 5, best-effort: degraded",
        profile: "extends: strict\nlayers:\n  landlock:\n    mode: best-effort\n",
        root: true,
        host: landlock_5,
        without: &[],
        degrade_dependents: false,
        expect: &[(Landlock, "degraded", "scopes dropped")],
    },
    Case {
        name: "--without landlock: skipped with the flag as the reason",
        profile: STRICT,
        root: true,
        host: as_is,
        without: &[Landlock],
        degrade_dependents: false,
        expect: &[
            (Landlock, "skipped", "switched off with --without landlock"),
            (Seccomp, "applied", ""),
        ],
    },
    Case {
        name: "no user namespaces, as a user: every privileged layer is refused",
        profile: STRICT,
        root: false,
        host: no_userns,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Namespaces, "refused", "user.max_user_namespaces is 0"),
            (
                Filesystem,
                "refused",
                "needs a user namespace when not root",
            ),
            (Capabilities, "refused", "CAP_SETPCAP"),
            (Rlimits, "applied", ""),
            (Landlock, "applied", ""),
            (Seccomp, "applied", ""),
        ],
    },
    Case {
        name: "no user namespaces, as root: required namespaces refused for the user one",
        profile: STRICT,
        root: true,
        host: no_userns,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Namespaces, "refused", "user (user.max_user_namespaces is 0"),
            (Filesystem, "refused", "no new pid namespace"),
            (Capabilities, "applied", ""),
        ],
    },
    Case {
        name: "no user namespaces, as root, best-effort: degraded without the user one",
        profile: "extends: strict\nlayers:\n  namespaces:\n    mode: best-effort\n",
        root: true,
        host: no_userns,
        without: &[],
        degrade_dependents: false,
        expect: &[(Namespaces, "degraded", "dropped: user")],
    },
    Case {
        name: "no time namespaces: required namespaces refused",
        profile: STRICT,
        root: true,
        host: no_time_ns,
        without: &[],
        degrade_dependents: false,
        expect: &[(Namespaces, "refused", "time (kernel has no time namespaces")],
    },
    Case {
        name: "Linux 5.10: the filesystem layer needs the detached-mount calls",
        profile: STRICT,
        root: true,
        host: old_kernel,
        without: &[],
        degrade_dependents: false,
        expect: &[
            (Filesystem, "refused", "needs Linux 5.12"),
            (Namespaces, "applied", ""),
        ],
    },
    Case {
        name: "no seccomp: required seccomp refused",
        profile: STRICT,
        root: false,
        host: no_seccomp,
        without: &[],
        degrade_dependents: false,
        expect: &[(Seccomp, "refused", "no seccomp")],
    },
    Case {
        name: "--without namespaces: the fresh /proc is refused",
        profile: STRICT,
        root: true,
        host: as_is,
        without: &[Namespaces],
        degrade_dependents: false,
        expect: &[
            (Namespaces, "skipped", "--without namespaces"),
            (Filesystem, "refused", "no new pid namespace"),
            (Capabilities, "applied", ""),
        ],
    },
    Case {
        name: "--without namespaces, dependents degrade: the host's /proc is bound",
        profile: STRICT,
        root: true,
        host: as_is,
        without: &[Namespaces],
        degrade_dependents: true,
        expect: &[
            (Filesystem, "degraded", "host processes stay visible"),
            (Landlock, "applied", ""),
        ],
    },
    Case {
        name: "--without namespaces as a user: the filesystem makes its own user namespace",
        profile: STRICT,
        root: false,
        host: as_is,
        without: &[Namespaces],
        degrade_dependents: true,
        expect: &[
            (Filesystem, "degraded", "no new pid namespace"),
            (Capabilities, "applied", ""),
        ],
    },
    Case {
        name: "a required Landlock rule on a missing path is refused",
        profile: MISSING_RULE,
        root: true,
        host: as_is,
        without: &[],
        degrade_dependents: false,
        expect: &[(Landlock, "refused", "/nonexistent-lasagna-plan")],
    },
    Case {
        name: "--without filesystem: the missing rule path is still refused on the host",
        profile: MISSING_RULE,
        root: true,
        host: as_is,
        without: &[Filesystem],
        degrade_dependents: false,
        expect: &[(Landlock, "refused", "/nonexistent-lasagna-plan")],
    },
    Case {
        name: "--without filesystem, dependents degrade: the rule is left out",
        profile: MISSING_RULE,
        root: true,
        host: as_is,
        without: &[Filesystem],
        degrade_dependents: true,
        expect: &[(Landlock, "degraded", "rules left out")],
    },
    Case {
        name: "cgroups best-effort on a host without hierarchies: rlimits stand in",
        profile: "layers:
  cgroups:
    mode: best-effort
    memory: {max: 64M}
    pids: {max: 32}
",
        root: true,
        host: as_is,
        without: &[],
        degrade_dependents: false,
        expect: &[(Cgroups, "degraded", "")],
    },
    Case {
        name: "cgroups required on a host without hierarchies: refused",
        profile: "layers:\n  cgroups:\n    mode: required\n    pids: {max: 32}\n",
        root: true,
        host: as_is,
        without: &[],
        degrade_dependents: false,
        expect: &[(Cgroups, "refused", "")],
    },
    Case {
        name: "net: user without pasta, required: refused with the package to install",
        profile: "layers:\n  network:\n    net: user\n",
        root: false,
        host: no_pasta,
        without: &[],
        degrade_dependents: false,
        expect: &[(Network, "refused", "apt-get install passt")],
    },
    Case {
        name: "net: user without pasta, best-effort: degraded to none",
        profile: "layers:\n  network:\n    mode: best-effort\n    net: user\n",
        root: false,
        host: no_pasta,
        without: &[],
        degrade_dependents: false,
        expect: &[(Network, "degraded", "the sandbox gets net: none")],
    },
    Case {
        name: "net: user where this user cannot open /dev/net/tun: refused with the fix",
        profile: "layers:\n  network:\n    net: user\n",
        root: false,
        host: no_tun,
        without: &[],
        degrade_dependents: false,
        expect: &[(Network, "refused", "chmod 0666 /dev/net/tun")],
    },
    Case {
        name: "net: proxy on any host: applied",
        profile: "layers:\n  network:\n    allow: [\"example.com:443\"]\n",
        root: false,
        host: no_pasta,
        without: &[],
        degrade_dependents: false,
        expect: &[(Network, "applied", "")],
    },
];

fn run_case(c: &Case) -> Plan {
    let mut h = host(c.root);
    (c.host)(&mut h);
    let opts = Options {
        without: c.without.to_vec(),
        timeout: None,
        degrade_dependents: c.degrade_dependents,
    };
    plan(&profile(c.profile), &h, &opts)
}

#[test]
fn each_layer_decides_against_each_host() {
    let mut failures = Vec::new();
    for c in CASES {
        let p = run_case(c);
        assert_eq!(
            p.layers.iter().map(|l| l.layer).collect::<Vec<_>>(),
            Layer::ALL,
            "{}: one plan per layer, in order",
            c.name
        );
        for &(layer, want, reason) in c.expect {
            let (got, why) = word(&p.get(layer).decision);
            if got != want || !why.contains(reason) {
                failures.push(format!(
                    "{}: {layer}: expected {want} ({reason:?}), got {got}: {why}",
                    c.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn namespaces_and_identity_follow_the_layers() {
    let p = run_case(&CASES[0]);
    for k in [Kind::User, Kind::Pid, Kind::Net, Kind::Mount, Kind::Uts] {
        assert!(p.has(k), "strict as root creates the {k:?} namespace");
    }
    assert_eq!(p.identity.switch, Switch::InInit);
    assert_eq!(p.hostname.as_deref(), Some("sandbox"));
    assert_eq!(p.cwd, "/work");
    // Without the namespaces layer, root keeps no user namespace and switches the
    // payload to an unprivileged host uid itself.
    let mut c = Options::without(&[Namespaces]);
    c.degrade_dependents = true;
    let p = plan(&profile(STRICT), &host(true), &c);
    assert!(!p.has(Kind::User) && !p.has(Kind::Pid) && p.has(Kind::Mount));
    assert_eq!(p.identity.switch, Switch::InPayload);
    assert_eq!((p.identity.uid, p.identity.gid), (65534, 65534));
    assert_eq!(p.hostname, None);
    // A user gets the user namespace from the filesystem layer, and says so.
    let p = plan(&profile(STRICT), &host(false), &c);
    assert!(p.has(Kind::User) && p.has(Kind::Mount));
    assert!(p
        .get(Filesystem)
        .notes
        .iter()
        .any(|n| n.contains("a user namespace is created for the mount namespace")));
}

#[test]
fn the_timeout_is_decided_once_command_line_first() {
    let yaml = "layers:\n  process:\n    timeout: 30s\n";
    let h = host(true);
    let p = plan(&profile(yaml), &h, &Options::default());
    assert_eq!(p.timeout, Some(Duration::from_secs(30)));
    // It holds with the process layer off: the supervisor enforces it.
    let p = plan(&profile(yaml), &h, &Options::without(&[Process]));
    assert_eq!(p.timeout, Some(Duration::from_secs(30)));
    let opts = Options {
        timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    };
    assert_eq!(
        plan(&profile(yaml), &h, &opts).timeout,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn cgroup_limits_the_host_cannot_give_become_rlimits() {
    let yaml = "layers:
  cgroups:
    mode: best-effort
    memory: {max: 64M}
    pids: {max: 32}
  rlimits:
    nproc: 16
";
    let p = plan(&profile(yaml), &host(true), &Options::default());
    assert!(p.cgroup.is_none());
    assert!(p.rlimits.contains(&(Limit::As, Some(64 << 20))));
    // The tighter of the rlimits layer's and the fallback's.
    assert!(p.rlimits.contains(&(Limit::Nproc, Some(16))));
    assert!(p
        .get(Cgroups)
        .notes
        .iter()
        .any(|n| n.contains("memory.max replaced by RLIMIT_AS")));
}

#[test]
fn configs_are_carried_only_for_layers_that_apply() {
    let p = plan(
        &profile(STRICT),
        &host(true),
        &Options::without(&[Seccomp, Capabilities]),
    );
    assert!(p.config.seccomp.is_none() && p.config.capabilities.is_none());
    assert!(p.config.landlock.is_some() && p.config.filesystem.is_some());
    assert!(p.explain(Seccomp).is_empty());
    assert!(!p.explain(Landlock).is_empty());
    // seccomp off: the MPTCP gap Landlock's TCP rules leave is told.
    assert!(p.get(Landlock).notes.iter().any(|n| n.contains("MPTCP")));
}

#[test]
fn network_modes_decide_the_namespace_and_the_proxy_port() {
    let p = plan(
        &profile("extends: strict\nlayers:\n  network:\n    allow: [\"a.example:443\"]\n"),
        &host(false),
        &Options::default(),
    );
    assert!(p.has(Kind::Net), "proxy: a network namespace of its own");
    assert_eq!(
        p.config.network.as_ref().and_then(|n| n.proxy_listen()),
        Some(3128)
    );
    let lp = p.landlock.as_ref().expect("strict's Landlock");
    assert_eq!(
        lp.net.connect,
        vec![3128],
        "the proxy's port is the one connect port"
    );
    let degraded = plan(
        &profile("layers:\n  network:\n    mode: best-effort\n    net: user\n"),
        &{
            let mut h = host(false);
            no_pasta(&mut h);
            h
        },
        &Options::default(),
    );
    assert!(
        degraded.has(Kind::Net),
        "degraded to none: still a namespace of its own"
    );
    assert!(degraded.pasta.is_none());
    let user = plan(
        &profile("layers:\n  network:\n    net: user\n"),
        &host(false),
        &Options::default(),
    );
    assert_eq!(
        user.pasta.as_deref(),
        Some(std::path::Path::new("/usr/bin/pasta"))
    );
    let host_net = plan(
        &profile("extends: strict\nlayers:\n  network:\n    net: host\n"),
        &host(true),
        &Options::default(),
    );
    assert!(!host_net.has(Kind::Net));
}

#[test]
fn every_refusing_dependency_is_relaxed_by_degrade_dependents() {
    // For each dependency that refuses, a profile whose `layer` is refused without `on`,
    // and applies (degraded) once dependents degrade.
    let profile_for = |d: &Dependency| match (d.layer, d.on) {
        (Filesystem, Namespaces) => STRICT,
        (Landlock, Filesystem) => MISSING_RULE,
        other => panic!("no test profile for the dependency {other:?}: add one"),
    };
    for d in DEPENDENCIES.iter().filter(|d| d.refuses) {
        let p = profile(profile_for(d));
        let mut opts = Options::without(&[d.on]);
        let refused = plan(&p, &host(true), &opts);
        assert!(
            matches!(refused.get(d.layer).decision, Decision::Refuse(_)),
            "{} without {}: {:?}",
            d.layer,
            d.on,
            refused.get(d.layer).decision
        );
        opts.degrade_dependents = true;
        let relaxed = plan(&p, &host(true), &opts);
        assert!(
            matches!(relaxed.get(d.layer).decision, Decision::Degrade(_)),
            "{} without {}, dependents degrading: {:?}",
            d.layer,
            d.on,
            relaxed.get(d.layer).decision
        );
        assert!(dependents(d.on).contains(&d.layer));
    }
}

#[test]
fn a_plan_says_which_layers_apply_and_which_are_refused() {
    let p = plan(
        &profile(STRICT),
        &host(false),
        &Options::without(&[Seccomp]),
    );
    assert!(p.applies(Landlock) && !p.applies(Seccomp) && !p.applies(Network));
    assert!(p.refusals().is_empty());
    let refused = plan(&profile(MISSING_RULE), &host(true), &Options::default());
    let layers: Vec<Layer> = refused.refusals().iter().map(|l| l.layer).collect();
    assert_eq!(layers, vec![Landlock]);
    // Why a layer is off: the flag, the profile, or nothing written.
    let off = plan(
        &profile("extends: strict\nlayers:\n  seccomp:\n    mode: off\n"),
        &host(true),
        &Options::without(&[Landlock]),
    );
    for (layer, why) in [
        (Landlock, "switched off with --without landlock"),
        (Seccomp, "off in the profile"),
        (Network, "not in the profile"),
    ] {
        assert_eq!(
            off.get(layer).decision,
            Decision::Skip(why.into()),
            "{layer}"
        );
    }
    assert_eq!(off.get(Seccomp).requested, Requirement::Off);
    assert_eq!(off.get(Process).requested, Requirement::Required);
}

#[test]
fn the_payload_starts_at_the_root_of_its_view_unless_told() {
    let h = host(true);
    // strict names its cwd; a view without one starts at its root; without a view, here.
    assert_eq!(plan(&profile(STRICT), &h, &Options::default()).cwd, "/work");
    let view = "layers:\n  filesystem:\n    proc: false\n    mounts: [{ro-bind: /usr}]\n";
    assert_eq!(plan(&profile(view), &h, &Options::default()).cwd, "/");
    let here = std::env::current_dir().unwrap();
    assert_eq!(
        plan(
            &profile("layers:\n  rlimits:\n    nofile: 64\n"),
            &h,
            &Options::default()
        )
        .cwd,
        here.to_str().unwrap()
    );
}

#[test]
fn a_degraded_network_carries_the_net_it_gets() {
    let mut h = host(false);
    no_pasta(&mut h);
    let p = plan(
        &profile("layers:\n  network:\n    mode: best-effort\n    net: user\n"),
        &h,
        &Options::default(),
    );
    let net = p.config.network.as_ref().expect("a degraded layer applies");
    assert_eq!(net.net, network::Net::None);
    assert!(p.has(Kind::Net) && p.has(Kind::User));
    assert!(
        p.get(Network).notes[0].contains("a user namespace is created for the network namespace")
    );
    // As root no user namespace is needed for it.
    let p = plan(
        &profile("layers:\n  network:\n    net: none\n"),
        &host(true),
        &Options::default(),
    );
    assert!(p.has(Kind::Net) && !p.has(Kind::User));
}

#[test]
fn landlock_notes_say_how_far_it_is_enforced() {
    let full = plan(&profile(STRICT), &host(true), &Options::default());
    assert!(full
        .get(Landlock)
        .notes
        .iter()
        .any(|n| n == "planned: fully enforced"));
    let mut h = host(true);
    landlock_5(&mut h);
    let part = plan(
        &profile("extends: strict\nlayers:\n  landlock:\n    mode: best-effort\n"),
        &h,
        &Options::default(),
    );
    let notes = &part.get(Landlock).notes;
    assert!(
        notes.iter().any(|n| n == "planned: partially enforced"),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|n| n == "planned: fully enforced"));
    // A refused layer plans nothing.
    let none = plan(&profile(MISSING_RULE), &host(true), &Options::default());
    assert!(!none
        .get(Landlock)
        .notes
        .iter()
        .any(|n| n.starts_with("planned:")));
}

#[test]
fn host_ids_are_told_and_auto_needs_the_pid_namespace() {
    let auto = "extends: strict\nlayers:\n  namespaces:\n    host-uid: auto\n    host-gid: auto\n";
    let p = plan(&profile(auto), &host(true), &Options::default());
    assert!(p.applies(Namespaces), "{:?}", p.get(Namespaces).decision);
    assert!(p
        .get(Namespaces)
        .notes
        .iter()
        .any(|n| n.starts_with("host ids: a uid and gid of its own for this run")));
    let no_pid = format!("{auto}    pid: false\n");
    let p = plan(&profile(&no_pid), &host(true), &Options::default());
    assert!(
        matches!(&p.get(Namespaces).decision, Decision::Refuse(r) if r.contains("host-uid: auto needs the pid namespace")),
        "{:?}",
        p.get(Namespaces).decision
    );
    // Host ids mean nothing without root, and a user is told so; the default says nothing.
    let fixed = "extends: strict\nlayers:\n  namespaces:\n    host-uid: 2000\n    host-gid: 2000\n";
    let told = |yaml: &str, root: bool| {
        plan(&profile(yaml), &host(root), &Options::default())
            .get(Namespaces)
            .notes
            .iter()
            .any(|n| n.starts_with("host-uid/host-gid apply only when lasagna runs as root"))
    };
    assert!(told(fixed, false));
    assert!(!told(fixed, true) && !told(STRICT, false));
}
