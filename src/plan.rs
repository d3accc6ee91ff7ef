//! Profile × Host × command-line toggles → one decision per layer, before anything is
//! created. A pure function: `explain`, `check`, `run --dry-run` and `run` share it.

use serde::Serialize;

use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::layers::filesystem::{view, FsPlan};
use crate::layers::namespaces::{IdMaps, Kind};
use crate::layers::{cgroups, landlock, seccomp};
use crate::profile::{Profile, Requirement};

/// The decision for one layer, with notes worth telling the user.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    pub layer: Layer,
    pub requested: Requirement,
    #[serde(flatten)]
    pub decision: Decision,
    pub notes: Vec<String>,
}

/// Who the payload runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// uid/gid maps written for a user namespace, when there is one.
    #[serde(skip)]
    pub maps: Option<IdMaps>,
    /// Ids the payload switches to (inside the user namespace if there is one).
    pub uid: u32,
    pub gid: u32,
    /// Where the ids are switched with setresgid/setresuid, if anywhere.
    pub switch: Switch,
    /// `host-uid: auto` as root: the supervisor picks a host uid (and the same gid) from
    /// this range at launch, locked for the run; the host ids above are filled in then.
    pub pick_host_ids: Option<(u32, u32)>,
}

impl Identity {
    /// Put the host ids picked for this run in place.
    pub fn set_host_ids(&mut self, uid: u32, gid: u32) {
        match (&mut self.maps, self.switch) {
            (Some(m), _) => {
                m.host_uid = uid;
                m.host_gid = gid;
            }
            (None, _) => {
                self.uid = uid;
                self.gid = gid;
            }
        }
    }

    /// The payload's ids on the host, when lasagna runs as root and they differ from its
    /// own (what the supervisor chowns a directory it makes for the payload to).
    pub fn host_ids_if_root(&self) -> Option<(u32, u32)> {
        match (&self.maps, self.switch) {
            (Some(m), Switch::InInit) => Some((m.host_uid, m.host_gid)),
            (None, Switch::InPayload) => Some((self.uid, self.gid)),
            _ => None,
        }
    }
}

/// Where the sandbox's processes take their final ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Switch {
    /// Already right: the kernel mapped the caller's id.
    None,
    /// In init, right after release: as host root in a user namespace, the child's uid 0 is
    /// unmapped there, and files cannot be created until its fsuid is mapped. Capabilities
    /// in the namespace are kept (uid 0 is not the namespace's root).
    InInit,
    /// In the payload, after the bounding set is dropped: real host root without a user
    /// namespace, switching to an unprivileged host uid.
    InPayload,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub profile: String,
    pub layers: Vec<LayerPlan>,
    /// Namespaces the launch creates (including the mount namespace and a user namespace
    /// that another layer needed).
    pub namespaces: Vec<Kind>,
    pub identity: Identity,
    /// A fresh /proc can be mounted (there is a new pid namespace).
    pub fresh_proc: bool,
    /// The tree the filesystem layer builds, when it applies.
    #[serde(skip)]
    pub filesystem: Option<FsPlan>,
    /// The cgroup to create, when the cgroups layer applies with a cgroup.
    #[serde(skip)]
    pub cgroup: Option<cgroups::CgroupPlan>,
    /// rlimits standing in for cgroup limits the host cannot give (best-effort).
    #[serde(skip)]
    pub cgroup_fallback: Vec<cgroups::RlimitFallback>,
    /// Parents in which our own stale cgroups are swept at start.
    #[serde(skip)]
    pub cgroup_sweep: Vec<std::path::PathBuf>,
    /// What Landlock will enforce, when it applies.
    #[serde(skip)]
    pub landlock: Option<landlock::Plan>,
    /// Landlock TCP rules are in force (seccomp then refuses MPTCP).
    pub landlock_net_rules: bool,
}

impl Plan {
    pub fn get(&self, layer: Layer) -> &LayerPlan {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .expect("every layer is planned")
    }

    pub fn applies(&self, layer: Layer) -> bool {
        self.get(layer).decision.applies()
    }

    pub fn refusals(&self) -> Vec<&LayerPlan> {
        self.layers
            .iter()
            .filter(|l| matches!(l.decision, Decision::Refuse(_)))
            .collect()
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.namespaces.contains(&kind)
    }
}

/// Decide: a required layer the host cannot give is refused, a best-effort one degrades.
fn cannot(requested: Requirement, what: String, fix: &str) -> Decision {
    match requested {
        Requirement::Required => Decision::Refuse(format!("{what} (fix: {fix})")),
        Requirement::BestEffort => Decision::Skip(format!("best-effort: {what}")),
        Requirement::Off => Decision::Skip("off".into()),
    }
}

pub fn plan(
    profile: &Profile,
    host: &Host,
    without: &[Layer],
    timeout: Option<std::time::Duration>,
) -> Plan {
    // Every host walk of one plan shares the directories it already checked.
    crate::hostfs::cached(|| decide(profile, host, without, timeout))
}

fn decide(
    profile: &Profile,
    host: &Host,
    without: &[Layer],
    timeout: Option<std::time::Duration>,
) -> Plan {
    let requested = |layer: Layer| {
        if without.contains(&layer) {
            Requirement::Off
        } else {
            profile.requested(layer)
        }
    };
    let off_reason = |layer: Layer| {
        if without.contains(&layer) {
            format!("switched off with --without {layer}")
        } else if profile.section_present(layer) {
            "off in the profile".to_string()
        } else {
            "not in the profile".to_string()
        }
    };
    let userns_blocker = host.userns_blocker();
    let mut layers = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    let mut userns_for_privilege = false;

    // namespaces
    let ns_req = requested(Layer::Namespaces);
    let ns_cfg = profile.namespaces.as_ref();
    let mut ns_notes = Vec::new();
    let ns_decision = match (ns_req, ns_cfg) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Namespaces)),
        (req, Some(cfg)) => {
            let mut wanted = cfg.kinds();
            let mut dropped = Vec::new();
            if !host.time_namespace {
                wanted.retain(|k| *k != Kind::Time);
                if cfg.time {
                    dropped.push("time (kernel has no time namespaces, Linux < 5.6)".to_string());
                }
            }
            if !host.cgroup_namespace {
                wanted.retain(|k| *k != Kind::Cgroup);
                if cfg.cgroup {
                    dropped.push("cgroup (kernel has no cgroup namespaces)".to_string());
                }
            }
            let needs_userns = wanted.contains(&Kind::User);
            if let (true, Some((why, fix))) = (needs_userns, &userns_blocker) {
                if host.is_root {
                    wanted.retain(|k| *k != Kind::User);
                    dropped.push(format!("user ({why}; fix: {fix})"));
                } else {
                    wanted.clear();
                    dropped.push(format!("all: no user namespace ({why}; fix: {fix})"));
                }
            }
            if !host.is_root && !wanted.contains(&Kind::User) && !wanted.is_empty() {
                dropped.push("all: without a user namespace only root can create namespaces (set `user: true`)".into());
                wanted.clear();
            }
            if dropped.is_empty() {
                kinds.extend(wanted);
                Decision::Apply
            } else if req == Requirement::Required {
                Decision::Refuse(format!("cannot create namespaces: {}", dropped.join("; ")))
            } else if wanted.is_empty() {
                Decision::Skip(format!("best-effort: {}", dropped.join("; ")))
            } else {
                kinds.extend(wanted);
                Decision::Degrade(format!("dropped: {}", dropped.join("; ")))
            }
        }
    };
    if ns_decision.applies() && !kinds.contains(&Kind::User) && host.is_root {
        ns_notes.push("no user namespace: the payload runs with real host ids (switched to an unprivileged uid)".into());
    }
    layers.push(LayerPlan {
        layer: Layer::Namespaces,
        requested: ns_req,
        decision: ns_decision,
        notes: ns_notes,
    });

    // filesystem: a mount namespace, which needs privilege: root or a user namespace.
    let fs_req = requested(Layer::Filesystem);
    let mut fs_notes = Vec::new();
    let fs_decision = match (fs_req, profile.filesystem.as_ref()) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Filesystem)),
        (req, Some(cfg)) => {
            if !host.is_root && !kinds.contains(&Kind::User) {
                match &userns_blocker {
                    Some((why, fix)) => {
                        cannot(req, format!("a mount namespace needs a user namespace when not root: {why}"), fix)
                    }
                    None => {
                        userns_for_privilege = true;
                        fs_notes.push("a user namespace is created for the mount namespace (the namespaces layer is off)".into());
                        Decision::Apply
                    }
                }
            } else {
                Decision::Apply
            }
            .and_then_proc(cfg.proc, kinds.contains(&Kind::Pid), req, &mut fs_notes)
        }
    };
    let fresh_proc = kinds.contains(&Kind::Pid);
    // The tree itself: bind sources walked on the host, mount points placed.
    let mut fs_plan = None;
    let fs_decision = match (fs_decision.applies(), profile.filesystem.as_ref()) {
        (true, Some(_)) if !host.mount_api => cannot(
            fs_req,
            format!(
                "the filesystem layer builds every mount detached (open_tree, mount_setattr, \
                 move_mount), which needs Linux 5.12; this kernel is {}",
                host.kernel
            ),
            "run on Linux 5.12 or newer",
        ),
        (true, Some(cfg)) => {
            let fsp = view::plan(cfg, fresh_proc);
            fs_notes.extend(fsp.notes.iter().cloned());
            let decision = if fsp.problems.is_empty() {
                fs_decision
            } else if fs_req == Requirement::Required {
                Decision::Refuse(fsp.problems.join("; "))
            } else {
                Decision::Degrade(format!("left out: {}", fsp.problems.join("; ")))
            };
            if decision.applies() {
                fs_plan = Some(fsp);
            }
            decision
        }
        _ => fs_decision,
    };
    if fs_decision.applies() {
        kinds.push(Kind::Mount);
        if userns_for_privilege {
            kinds.push(Kind::User);
        }
    }
    let fs_refused = matches!(fs_decision, Decision::Refuse(_));
    layers.push(LayerPlan {
        layer: Layer::Filesystem,
        requested: fs_req,
        decision: fs_decision,
        notes: fs_notes,
    });

    // cgroups: where the cgroup can be made (own cgroup, delegation), or the rlimit fallback.
    let cg_req = requested(Layer::Cgroups);
    let mut cg_notes = Vec::new();
    let mut cgroup_plan = None;
    let mut cgroup_fallback = Vec::new();
    let mut cgroup_sweep = Vec::new();
    let cg_decision = match (cg_req, profile.cgroups.as_ref()) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Cgroups)),
        (req, Some(spec)) => {
            let mut spec = spec.clone();
            spec.mode = req;
            let timeout = timeout.or(profile.process.as_ref().and_then(|p| p.timeout));
            let pre = cgroups::preflight(&spec, &host.cgroups, timeout);
            for f in &pre.fallback {
                cg_notes.push(format!(
                    "{} replaced by {:?} = {} ({})",
                    f.replaces, f.resource, f.limit, f.semantics
                ));
            }
            cgroup_plan = pre.plan;
            cgroup_fallback = pre.fallback;
            // From the hierarchies already probed: the supervisor does not read them again.
            cgroup_sweep = cgroups::sweep_parents(&host.cgroups, spec.parent.as_ref());
            pre.decision
        }
    };
    layers.push(LayerPlan {
        layer: Layer::Cgroups,
        requested: cg_req,
        decision: cg_decision,
        notes: cg_notes,
    });

    // capabilities: dropping the bounding set needs CAP_SETPCAP, which an unprivileged
    // caller has only inside a user namespace.
    let caps_req = requested(Layer::Capabilities);
    let mut caps_notes = Vec::new();
    let caps_decision = match (caps_req, profile.capabilities.as_ref()) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Capabilities)),
        (req, Some(_)) if !host.is_root && !kinds.contains(&Kind::User) => match &userns_blocker {
            Some((why, fix)) => cannot(
                req,
                format!("the bounding set can only be dropped with CAP_SETPCAP, which needs a user namespace when not root: {why}"),
                fix,
            ),
            None => {
                kinds.push(Kind::User);
                caps_notes.push("a user namespace is created to drop the bounding set (the namespaces layer is off)".into());
                Decision::Apply
            }
        },
        _ => Decision::Apply,
    };
    layers.push(LayerPlan {
        layer: Layer::Capabilities,
        requested: caps_req,
        decision: caps_decision,
        notes: caps_notes,
    });

    for (layer, present) in [
        (Layer::Rlimits, profile.rlimits.is_some()),
        (Layer::Process, profile.process.is_some()),
    ] {
        let req = requested(layer);
        let decision = if req == Requirement::Off || !present {
            Decision::Skip(off_reason(layer))
        } else {
            Decision::Apply
        };
        layers.push(LayerPlan {
            layer,
            requested: req,
            decision,
            notes: Vec::new(),
        });
    }

    // landlock: ABI negotiation decides what is enforced, before anything exists.
    let ll_req = requested(Layer::Landlock);
    let mut landlock_plan = None;
    let mut ll_notes = Vec::new();
    let ll_decision = match (ll_req, profile.landlock.as_ref()) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Landlock)),
        (req, Some(policy)) => {
            let (decision, lp) =
                landlock::preflight(policy, req, host.landlock_abi, policy.abi_cap);
            ll_notes.push(format!("ABI {} (host {})", lp.abi, lp.host_abi));
            ll_notes.extend(lp.dropped.iter().map(|d| format!("dropped: {d}")));
            ll_notes.extend(lp.unrestricted.iter().cloned());
            // Rule paths as the view (or the host, without the filesystem layer) has them:
            // a rule is never moved onto what a link planted since points at.
            let mut lp = lp;
            let problems = if fs_refused {
                Vec::new()
            } else {
                landlock_rule_paths(&mut lp, fs_plan.as_ref(), &mut ll_notes)
            };
            let decision = match (problems.is_empty(), &decision) {
                (true, _) | (false, Decision::Refuse(_)) | (false, Decision::Skip(_)) => decision,
                (false, _) if req == Requirement::Required => {
                    Decision::Refuse(format!("landlock: {}", problems.join("; ")))
                }
                (false, Decision::Degrade(r)) => {
                    Decision::Degrade(format!("{r}; rules left out: {}", problems.join("; ")))
                }
                (false, _) => Decision::Degrade(format!("rules left out: {}", problems.join("; "))),
            };
            match &decision {
                Decision::Apply => ll_notes.push("planned: fully enforced".into()),
                Decision::Degrade(_) => ll_notes.push("planned: partially enforced".into()),
                _ => {}
            }
            if decision.applies() {
                landlock_plan = Some(lp);
            }
            decision
        }
    };
    let landlock_net_rules = landlock_plan
        .as_ref()
        .is_some_and(|lp| !lp.handled_net.is_empty());

    // seccomp: the filter is compiled in `arm`; here only host support is decided.
    let sc_req = requested(Layer::Seccomp);
    let mut sc_notes = Vec::new();
    let sc_decision = match (sc_req, profile.seccomp.as_ref()) {
        (Requirement::Off, _) | (_, None) => Decision::Skip(off_reason(Layer::Seccomp)),
        (_, Some(policy)) => {
            let mut policy = policy.clone();
            policy.mode = sc_req;
            seccomp::preflight(&policy)
        }
    };
    if sc_decision.applies() {
        let nnp = profile.process.as_ref().is_some_and(|p| p.no_new_privs)
            && requested(Layer::Process) != Requirement::Off;
        if !nnp {
            sc_notes.push("no_new_privs is set anyway: the kernel requires it to install a filter without CAP_SYS_ADMIN".into());
        }
        if landlock_net_rules {
            sc_notes.push("MPTCP sockets refused: Landlock's TCP rules do not cover them".into());
        }
    }
    if let Some(policy) = profile.landlock.as_ref().filter(|_| ll_decision.applies()) {
        if let Some(gap) = landlock::mptcp_gap(policy, &sc_decision) {
            ll_notes.push(gap);
        }
    }
    layers.push(LayerPlan {
        layer: Layer::Landlock,
        requested: ll_req,
        decision: ll_decision,
        notes: ll_notes,
    });
    layers.push(LayerPlan {
        layer: Layer::Seccomp,
        requested: sc_req,
        decision: sc_decision,
        notes: sc_notes,
    });

    let identity = identity(profile, host, kinds.contains(&Kind::User));
    if host.is_root {
        let ns = layers
            .iter_mut()
            .find(|l| l.layer == Layer::Namespaces)
            .expect("namespaces is planned");
        let cfg = profile.namespaces.as_ref();
        if cfg.is_some_and(|c| c.run_as_host_root) && identity.host_ids_if_root().is_none() {
            ns.notes.push("WARNING: the payload runs as host root (run-as-host-root: true): it can write host /proc/sys and own any file it is given".into());
        }
        if let Some((first, last)) = identity.pick_host_ids {
            ns.notes.push(format!(
                "host ids: a uid and gid of its own for this run, from {first}-{last}"
            ));
        }
    } else if profile.namespaces.as_ref().is_some_and(|c| {
        !matches!(
            c.host_ids,
            crate::layers::namespaces::HostIds::Fixed {
                uid: 65534,
                gid: 65534
            }
        )
    }) {
        layers
            .iter_mut()
            .find(|l| l.layer == Layer::Namespaces)
            .expect("namespaces is planned")
            .notes
            .push("host-uid/host-gid apply only when lasagna runs as root; here the payload maps to your own uid".into());
    }
    Plan {
        profile: profile.name.clone(),
        layers,
        namespaces: kinds,
        identity,
        fresh_proc,
        filesystem: fs_plan,
        landlock: landlock_plan,
        cgroup: cgroup_plan,
        cgroup_fallback,
        cgroup_sweep,
        landlock_net_rules,
    }
}

trait ProcDecision {
    fn and_then_proc(
        self,
        wants_proc: bool,
        has_pidns: bool,
        req: Requirement,
        notes: &mut Vec<String>,
    ) -> Decision;
}

impl ProcDecision for Decision {
    /// A fresh /proc needs a new pid namespace; without one the host's /proc is bound and
    /// host processes are visible: a degradation, refused when required.
    fn and_then_proc(
        self,
        wants_proc: bool,
        has_pidns: bool,
        req: Requirement,
        notes: &mut Vec<String>,
    ) -> Decision {
        if self != Decision::Apply || !wants_proc || has_pidns {
            return self;
        }
        let why = "no new pid namespace: the host's /proc is bound instead, host processes stay visible in it";
        notes.push(why.into());
        match req {
            Requirement::Required => Decision::Refuse(format!(
                "{why} (fix: enable the namespaces layer with `pid: true`, or set `proc: false`)"
            )),
            _ => Decision::Degrade(why.into()),
        }
    }
}

fn identity(profile: &Profile, host: &Host, userns: bool) -> Identity {
    use crate::layers::namespaces::HostIds;
    let cfg = profile.namespaces.as_ref();
    let inside_uid = cfg.map(|c| c.uid).unwrap_or(host.euid);
    let inside_gid = cfg.map(|c| c.gid).unwrap_or(host.egid);
    let host_ids = cfg.map(|c| c.host_ids).unwrap_or(HostIds::Fixed {
        uid: 65534,
        gid: 65534,
    });
    let (host_uid, host_gid, pick) = match host_ids {
        HostIds::Fixed { uid, gid } => (uid, gid, None),
        // Filled in by the supervisor when it picks; never 0.
        HostIds::Auto { first, last } => (first, first, Some((first, last))),
    };
    match (userns, host.is_root) {
        (true, true) => Identity {
            maps: Some(IdMaps {
                inside_uid,
                inside_gid,
                host_uid,
                host_gid,
            }),
            uid: inside_uid,
            gid: inside_gid,
            switch: Switch::InInit,
            pick_host_ids: pick,
        },
        (true, false) => Identity {
            maps: Some(IdMaps {
                inside_uid,
                inside_gid,
                host_uid: host.euid,
                host_gid: host.egid,
            }),
            uid: inside_uid,
            gid: inside_gid,
            switch: Switch::None,
            pick_host_ids: None,
        },
        // Real root without a user namespace still hands the payload an unprivileged uid.
        (false, true) => Identity {
            maps: None,
            uid: host_uid,
            gid: host_gid,
            switch: if host_uid != 0 || pick.is_some() {
                Switch::InPayload
            } else {
                Switch::None
            },
            pick_host_ids: pick,
        },
        (false, false) => Identity {
            maps: None,
            uid: host.euid,
            gid: host.egid,
            switch: Switch::None,
            pick_host_ids: None,
        },
    }
}

/// Resolve every Landlock rule path where the payload will open it: through the view the
/// filesystem layer builds, or on the host when there is none. A path that resolves
/// through links the view itself made is rewritten to the real path (with a note); a path
/// that is missing, or passes through a link the view does not control, drops the rule
/// when it is optional and is a problem when it is not.
fn landlock_rule_paths(
    lp: &mut landlock::Plan,
    fs: Option<&FsPlan>,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut via_links = Vec::new();
    lp.paths.retain_mut(|rule| {
        let resolved = match fs {
            Some(fs) => fs.rule_path(&rule.path),
            None => view::host_rule_path(&rule.path),
        };
        match resolved {
            view::RulePath::Real { path, note } => {
                if note.is_some() {
                    via_links.push(format!("{} -> {path}", rule.path));
                }
                rule.path = path;
                true
            }
            view::RulePath::Missing(why) | view::RulePath::Link(why)
                if rule.missing == landlock::Missing::Skip =>
            {
                notes.push(format!("optional rule for {} left out: {why}", rule.path));
                false
            }
            view::RulePath::Missing(why) => {
                problems.push(format!(
                    "rule path {}: {why} (fix: mark the rule `optional: true`, or create the path)",
                    rule.path
                ));
                false
            }
            view::RulePath::Link(why) => {
                problems.push(format!(
                    "rule path {}: {why}; a rule is never applied to what a link points at",
                    rule.path
                ));
                false
            }
        }
    });
    if !via_links.is_empty() {
        notes.push(format!(
            "rule paths through symlinks apply to their targets: {}",
            via_links.join(", ")
        ));
    }
    problems
}
