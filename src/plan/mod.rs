//! Profile × Host × command line → one decision per layer and everything the launch
//! needs, before anything is created. A pure function of its inputs (besides walking the
//! host paths a profile names): `explain`, `check`, `run --dry-run` and `run` print the
//! same [`Plan`], and `arm` prepares the child's data from it alone.
//!
//! Each layer decides in its own module (`layers::X::plan`); this module runs them in
//! dependency order and joins them where one layer needs another ([`DEPENDENCIES`]).

mod checks;
mod identity;
mod idmap;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::Serialize;

pub use identity::{Identity, Switch};

use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::layers::filesystem::{view, FsPlan};
use crate::layers::namespaces::Kind;
use crate::layers::rlimits::Limit;
use crate::layers::{
    capabilities, cgroups, filesystem, landlock, namespaces, network, process, rlimits, seccomp,
};
use crate::profile::{Profile, Requirement};

// ---- what a plan is asked -------------------------------------------------------------------

/// What the command line adds to the profile.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Layers switched off for this run (`--without`).
    pub without: Vec<Layer>,
    /// Wall-clock limit overriding the profile's (`--timeout`).
    pub timeout: Option<Duration>,
    /// A layer that needs one switched off by `without` degrades instead of being refused
    /// (`lasagna test` leaves one layer out and keeps the rest running).
    pub degrade_dependents: bool,
}

impl Options {
    pub fn without(layers: &[Layer]) -> Options {
        Options {
            without: layers.to_vec(),
            ..Options::default()
        }
    }
}

// ---- what layers need of each other -----------------------------------------------------

/// One layer relying on another: what it needs, and what happens without it.
#[derive(Debug, Clone, Copy)]
pub struct Dependency {
    pub layer: Layer,
    pub on: Layer,
    pub needs: &'static str,
    /// What the plan does when `on` is off; with [`Options::degrade_dependents`] a refusal
    /// here becomes a degradation.
    pub without: &'static str,
    /// Whether `without` refuses a required `layer` (and so what `degrade_dependents`
    /// relaxes).
    pub refuses: bool,
}

pub const DEPENDENCIES: [Dependency; 6] = [
    Dependency {
        layer: Layer::Filesystem,
        on: Layer::Namespaces,
        needs: "a fresh /proc needs a new pid namespace",
        without: "the host's /proc is bound instead and host processes stay visible in it",
        refuses: true,
    },
    Dependency {
        layer: Layer::Filesystem,
        on: Layer::Namespaces,
        needs: "when not root, a mount namespace needs a user namespace",
        without: "the filesystem layer creates the user namespace itself",
        refuses: false,
    },
    Dependency {
        layer: Layer::Capabilities,
        on: Layer::Namespaces,
        needs: "when not root, dropping the bounding set needs CAP_SETPCAP in a user namespace",
        without: "the capabilities layer creates the user namespace itself",
        refuses: false,
    },
    Dependency {
        layer: Layer::Landlock,
        on: Layer::Filesystem,
        needs: "rule paths are resolved in the view the filesystem layer builds",
        without: "rule paths resolve on the host; a required one missing there is refused",
        refuses: true,
    },
    Dependency {
        layer: Layer::Seccomp,
        on: Layer::Process,
        needs: "a filter is installed under no_new_privs",
        without: "no_new_privs is set anyway",
        refuses: false,
    },
    Dependency {
        layer: Layer::Seccomp,
        on: Layer::Landlock,
        needs: "MPTCP sockets are refused when Landlock restricts TCP ports",
        without: "MPTCP sockets are filtered like any other socket",
        refuses: false,
    },
];

/// The layers that rely on `layer`.
pub fn dependents(layer: Layer) -> Vec<Layer> {
    let mut out: Vec<Layer> = DEPENDENCIES
        .iter()
        .filter(|d| d.on == layer)
        .map(|d| d.layer)
        .collect();
    out.dedup();
    out
}

// ---- the plan ---------------------------------------------------------------------------

/// The decision for one layer, with notes worth telling the user.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPlan {
    pub layer: Layer,
    pub requested: Requirement,
    #[serde(flatten)]
    pub decision: Decision,
    pub notes: Vec<String>,
}

/// The checked sections of the layers that apply (`None` for the others): what `arm` and
/// `explain` read instead of the profile.
#[derive(Debug, Clone, Default)]
pub struct Configs {
    pub namespaces: Option<namespaces::Config>,
    pub filesystem: Option<filesystem::Config>,
    pub cgroups: Option<cgroups::Config>,
    pub capabilities: Option<capabilities::Config>,
    pub rlimits: Option<rlimits::Config>,
    pub process: Option<process::Config>,
    pub landlock: Option<landlock::Config>,
    pub seccomp: Option<seccomp::Config>,
    pub network: Option<network::Config>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub profile: String,
    /// The user's or the system's files that change a shipped profile
    /// ([`Profile::overriding_files`]).
    pub overriding_files: Vec<String>,
    #[serde(skip)]
    pub description: String,
    /// The profiles this one extends, nearest first.
    #[serde(skip)]
    pub extends: Vec<String>,
    /// One per layer, in [`Layer::ALL`] order.
    pub layers: Vec<LayerPlan>,
    /// Namespaces the launch creates (including the mount namespace and a user namespace
    /// that another layer needed).
    pub namespaces: Vec<Kind>,
    pub identity: Identity,
    /// A fresh /proc can be mounted (there is a new pid namespace).
    pub fresh_proc: bool,
    /// Set in the UTS namespace, when there is one.
    #[serde(skip)]
    pub hostname: Option<String>,
    /// The run's wall-clock limit: the command line's, else the profile's (the supervisor
    /// enforces it even with the process layer off).
    #[serde(skip)]
    pub timeout: Option<Duration>,
    /// Where the payload starts.
    #[serde(skip)]
    pub cwd: String,
    /// lasagna runs as root (what `explain` says about ids depends on it).
    #[serde(skip)]
    pub as_root: bool,
    /// The highest capability number of this kernel.
    #[serde(skip)]
    pub cap_last_cap: u32,
    #[serde(skip)]
    pub config: Configs,
    /// The tree the filesystem layer builds, when it applies.
    #[serde(skip)]
    pub filesystem: Option<FsPlan>,
    /// The cgroup to create, when the cgroups layer applies with a cgroup.
    #[serde(skip)]
    pub cgroup: Option<cgroups::Plan>,
    /// Parents in which our own stale cgroups are swept at start.
    #[serde(skip)]
    pub cgroup_sweep: Vec<std::path::PathBuf>,
    /// The cgroups layer's explain lines (they depend on the host's hierarchies).
    #[serde(skip)]
    pub cgroup_explain: Vec<String>,
    /// The cgroup limits a degraded cgroups layer enforces neither in a cgroup nor by an
    /// rlimit standing in: what `run` names on every run (a degradation whose stand-ins hold
    /// every limit asked is left to -v, the report and explain).
    pub cgroup_unenforced: Vec<&'static str>,
    /// The payload's rlimits: the rlimits layer's, tightened by those standing in for
    /// cgroup limits the host cannot give (best-effort cgroups).
    #[serde(skip)]
    pub rlimits: Vec<(Limit, Option<u64>)>,
    /// What Landlock will enforce, when it applies.
    #[serde(skip)]
    pub landlock: Option<landlock::Plan>,
    /// Landlock TCP rules are in force (seccomp then refuses MPTCP).
    pub landlock_net_rules: bool,
    /// `net: user`: the pasta binary the supervisor starts.
    #[serde(skip)]
    pub pasta: Option<std::path::PathBuf>,
    /// What one layer allows and another refuses ([`checks`]): for `check`, `explain`,
    /// `run -v` and the report.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn get(&self, layer: Layer) -> &LayerPlan {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .expect("every layer is planned")
    }

    fn get_mut(&mut self, layer: Layer) -> &mut LayerPlan {
        self.layers
            .iter_mut()
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

    /// What the profile leaves open on this host ([`checks::gaps`]).
    pub fn gaps(&self) -> Vec<String> {
        checks::gaps(self)
    }

    /// The plain-words lines for a layer that applies: what it will do, stop and not stop.
    pub fn explain(&self, layer: Layer) -> Vec<String> {
        let c = &self.config;
        match layer {
            Layer::Namespaces => c
                .namespaces
                .as_ref()
                .map(|x| namespaces::explain(x, self.as_root)),
            Layer::Filesystem => c
                .filesystem
                .as_ref()
                .map(|x| filesystem::explain(x, self.fresh_proc, self.filesystem.as_ref())),
            Layer::Cgroups => Some(self.cgroup_explain.clone()),
            Layer::Capabilities => c.capabilities.as_ref().map(capabilities::explain),
            Layer::Rlimits => c.rlimits.as_ref().map(rlimits::explain),
            Layer::Process => c.process.as_ref().map(process::explain),
            Layer::Landlock => c
                .landlock
                .as_ref()
                .map(|x| landlock::explain(x, self.landlock.as_ref().map(|p| &p.net))),
            Layer::Seccomp => c.seccomp.as_ref().map(seccomp::explain),
            Layer::Network => c.network.as_ref().map(network::explain),
        }
        .unwrap_or_default()
    }
}

/// Plan `profile` on `host` with the command line's `opts`.
pub fn plan(profile: &Profile, host: &Host, opts: &Options) -> Plan {
    // Every host walk of one plan shares the directories it already checked.
    crate::hostfs::cached(|| decide(profile, host, opts))
}

/// The mode a layer runs in, and why it is off when it is.
struct Asked<'a> {
    profile: &'a Profile,
    opts: &'a Options,
}

impl Asked<'_> {
    fn mode(&self, layer: Layer) -> Requirement {
        if self.opts.without.contains(&layer) {
            Requirement::Off
        } else {
            self.profile.requested(layer)
        }
    }

    fn off_reason(&self, layer: Layer) -> String {
        if self.opts.without.contains(&layer) {
            format!("switched off with --without {layer}")
        } else if self.profile.section_present(layer) {
            "off in the profile".to_string()
        } else {
            "not in the profile".to_string()
        }
    }

    /// A refusal of `layer` for lack of `on` becomes a degradation.
    fn relaxed(&self, on: Layer) -> bool {
        self.opts.degrade_dependents && self.opts.without.contains(&on)
    }

    /// The section of a layer that is on (`None` when it is off or absent).
    fn on<'c, T>(&self, layer: Layer, section: Option<&'c T>) -> Option<(Requirement, &'c T)> {
        match self.mode(layer) {
            Requirement::Off => None,
            req => section.map(|s| (req, s)),
        }
    }
}

/// A required layer the host cannot give is refused, a best-effort one is skipped.
fn cannot(requested: Requirement, what: String, fix: &str) -> Decision {
    match requested {
        Requirement::Required => Decision::Refuse(format!("{what} (fix: {fix})")),
        Requirement::BestEffort => Decision::Skip(format!("best-effort: {what}")),
        Requirement::Off => Decision::Skip("off".into()),
    }
}

/// When not root, a layer that needs privilege (a mount namespace, CAP_SETPCAP) gets it
/// from a user namespace: the one the namespaces layer creates, or one of its own.
/// `Ok(true)`: create one for it.
fn userns_for(req: Requirement, host: &Host, kinds: &[Kind], what: &str) -> Result<bool, Decision> {
    if host.is_root || kinds.contains(&Kind::User) {
        return Ok(false);
    }
    match host.userns_blocker() {
        Some((why, fix)) => Err(cannot(req, format!("{what}: {why}"), &fix)),
        None => Ok(true),
    }
}

fn decide(profile: &Profile, host: &Host, opts: &Options) -> Plan {
    let asked = Asked { profile, opts };
    let mut kinds: Vec<Kind> = Vec::new();
    let mut config = Configs::default();
    let mut pasta = None;
    let planned = |layer: Layer, decision: Decision, notes: Vec<String>| LayerPlan {
        layer,
        requested: asked.mode(layer),
        decision,
        notes,
    };
    let skip = |layer: Layer| Decision::Skip(asked.off_reason(layer));

    // namespaces
    let ns = match asked.on(Layer::Namespaces, profile.namespaces.as_ref()) {
        None => planned(Layer::Namespaces, skip(Layer::Namespaces), Vec::new()),
        Some((req, cfg)) => {
            let p = namespaces::plan(cfg, req, host);
            kinds.extend(p.kinds);
            if p.decision.applies() {
                config.namespaces = Some(cfg.clone());
            }
            planned(Layer::Namespaces, p.decision, p.notes)
        }
    };
    // network: owns the network namespace when its section is present.
    let mut nw = match asked.on(Layer::Network, profile.network.as_ref()) {
        None => planned(Layer::Network, skip(Layer::Network), Vec::new()),
        Some((_, cfg)) if !cfg.net_needs_namespace() => {
            let p = network::plan(
                cfg,
                kinds.contains(&Kind::Net),
                host.pasta.as_deref(),
                host.tun,
            );
            kinds.retain(|k| *k != Kind::Net);
            config.network = Some(cfg.clone());
            planned(Layer::Network, p.decision, p.notes)
        }
        Some((req, cfg)) => {
            let p = network::plan(
                cfg,
                kinds.contains(&Kind::Net),
                host.pasta.as_deref(),
                host.tun,
            );
            if !p.decision.applies() {
                planned(Layer::Network, p.decision, p.notes)
            } else {
                match userns_for(
                    req,
                    host,
                    &kinds,
                    "a network namespace needs a user namespace when not root",
                ) {
                    Err(refused) => planned(Layer::Network, refused, p.notes),
                    Ok(own_userns) => {
                        let mut notes = p.notes;
                        if !kinds.contains(&Kind::Net) {
                            kinds.push(Kind::Net);
                        }
                        if own_userns {
                            kinds.push(Kind::User);
                            notes.insert(0, "a user namespace is created for the network namespace (the namespaces layer is off)".into());
                        }
                        config.network = Some(network::Config {
                            net: p.net,
                            ..cfg.clone()
                        });
                        pasta = p.pasta;
                        planned(Layer::Network, p.decision, notes)
                    }
                }
            }
        }
    };
    let fresh_proc = kinds.contains(&Kind::Pid);

    // filesystem: a mount namespace, which needs privilege (root or a user namespace).
    let mut fs_plan = None;
    let fs = match asked.on(Layer::Filesystem, profile.filesystem.as_ref()) {
        None => planned(Layer::Filesystem, skip(Layer::Filesystem), Vec::new()),
        Some((req, cfg)) => match userns_for(
            req,
            host,
            &kinds,
            "a mount namespace needs a user namespace when not root",
        ) {
            Err(refused) => planned(Layer::Filesystem, refused, Vec::new()),
            Ok(own_userns) => {
                let relax = asked.relaxed(Layer::Namespaces);
                let (decision, tree, mut notes) =
                    filesystem::plan(cfg, req, host, fresh_proc, relax);
                if decision.applies() {
                    kinds.push(Kind::Mount);
                    if own_userns {
                        kinds.push(Kind::User);
                        notes.insert(0, "a user namespace is created for the mount namespace (the namespaces layer is off)".into());
                    }
                    fs_plan = tree;
                    config.filesystem = Some(cfg.clone());
                }
                planned(Layer::Filesystem, decision, notes)
            }
        },
    };
    let fs_refused = matches!(fs.decision, Decision::Refuse(_));

    // timeout: decided once, for the supervisor and for the cgroups fallback.
    let timeout = opts
        .timeout
        .or(profile.process.as_ref().and_then(|p| p.timeout));

    // cgroups: where the cgroup can be made (own cgroup, delegation), or the rlimit fallback.
    let mut cgroup = None;
    let mut cgroup_sweep = Vec::new();
    let mut cgroup_explain = Vec::new();
    let mut fallback = Vec::new();
    let mut cgroup_unenforced = Vec::new();
    let cg = match asked.on(Layer::Cgroups, profile.cgroups.as_ref()) {
        None => planned(Layer::Cgroups, skip(Layer::Cgroups), Vec::new()),
        Some((req, spec)) => {
            let mut spec = spec.clone();
            spec.mode = req;
            let p = cgroups::plan(&spec, &host.cgroups, timeout);
            let mut notes: Vec<String> = p
                .fallback
                .iter()
                .map(|f| {
                    format!(
                        "{} replaced by {:?} = {} ({})",
                        f.replaces, f.resource, f.limit, f.semantics
                    )
                })
                .collect();
            if matches!(p.decision, Decision::Degrade(_)) {
                cgroup_unenforced = cgroups::unenforced(&spec.limits, &p);
                if !cgroup_unenforced.is_empty() {
                    notes.push(format!(
                        "not enforced on this host: {}",
                        cgroup_unenforced.join(", ")
                    ));
                }
            }
            if p.decision.applies() {
                cgroup_explain = cgroups::explain(&spec, &host.cgroups, &p);
                config.cgroups = Some(spec.clone());
            }
            // From the hierarchies already probed: the supervisor does not read them again.
            cgroup_sweep = cgroups::sweep_parents(&host.cgroups, spec.parent.as_ref());
            cgroup = p.plan;
            fallback = p.fallback;
            planned(Layer::Cgroups, p.decision, notes)
        }
    };

    // capabilities: the bounding set is dropped with CAP_SETPCAP.
    let caps = match asked.on(Layer::Capabilities, profile.capabilities.as_ref()) {
        None => planned(Layer::Capabilities, skip(Layer::Capabilities), Vec::new()),
        Some((req, cfg)) => match userns_for(
            req,
            host,
            &kinds,
            "the bounding set can only be dropped with CAP_SETPCAP, which needs a user namespace when not root",
        ) {
            Err(refused) => planned(Layer::Capabilities, refused, Vec::new()),
            Ok(own_userns) => {
                let mut notes = Vec::new();
                if own_userns {
                    kinds.push(Kind::User);
                    notes.push("a user namespace is created to drop the bounding set (the namespaces layer is off)".into());
                }
                config.capabilities = Some(cfg.clone());
                planned(Layer::Capabilities, Decision::Apply, notes)
            }
        },
    };

    // rlimits and process: nothing to ask of the host.
    let rl = match asked.on(Layer::Rlimits, profile.rlimits.as_ref()) {
        None => planned(Layer::Rlimits, skip(Layer::Rlimits), Vec::new()),
        Some((_, cfg)) => {
            config.rlimits = Some(cfg.clone());
            planned(Layer::Rlimits, Decision::Apply, Vec::new())
        }
    };
    let pr = match asked.on(Layer::Process, profile.process.as_ref()) {
        None => planned(Layer::Process, skip(Layer::Process), Vec::new()),
        Some((_, cfg)) => {
            config.process = Some(cfg.clone());
            planned(Layer::Process, Decision::Apply, Vec::new())
        }
    };

    // landlock: ABI negotiation decides what is enforced; rule paths resolve in the view.
    let mut landlock_plan = None;
    let mut ll = match asked.on(Layer::Landlock, profile.landlock.as_ref()) {
        None => planned(Layer::Landlock, skip(Layer::Landlock), Vec::new()),
        Some((req, policy)) => {
            let (decision, mut lp) = landlock::plan(policy, req, host.landlock_abi, policy.abi_cap);
            let mut notes = vec![format!("ABI {} (host {})", lp.abi, lp.host_abi)];
            notes.extend(lp.dropped.iter().map(|d| format!("dropped: {d}")));
            notes.extend(lp.unrestricted.iter().cloned());
            // A rule is never moved onto what a link planted since points at.
            let problems = if fs_refused {
                Vec::new()
            } else {
                landlock_rule_paths(&mut lp, fs_plan.as_ref(), &mut notes)
            };
            let relax = asked.relaxed(Layer::Filesystem);
            let decision = match (problems.is_empty(), decision) {
                (true, d) => d,
                (false, d @ (Decision::Refuse(_) | Decision::Skip(_))) => d,
                (false, _) if req == Requirement::Required && !relax => {
                    Decision::Refuse(format!("landlock: {}", problems.join("; ")))
                }
                (false, Decision::Degrade(r)) => {
                    Decision::Degrade(format!("{r}; rules left out: {}", problems.join("; ")))
                }
                (false, _) => Decision::Degrade(format!("rules left out: {}", problems.join("; "))),
            };
            match &decision {
                Decision::Apply => notes.push("planned: fully enforced".into()),
                Decision::Degrade(_) => notes.push("planned: partially enforced".into()),
                _ => {}
            }
            // The proxy's port is a connect port inside: the one way out.
            if let Some(port) = config.network.as_ref().and_then(|n| n.proxy_listen()) {
                if lp.allow_connect(port) {
                    notes.push(format!(
                        "net: connect to port {port} (the proxy) is allowed"
                    ));
                }
            }
            if decision.applies() {
                landlock_plan = Some(lp);
                config.landlock = Some(policy.clone());
            }
            planned(Layer::Landlock, decision, notes)
        }
    };
    let landlock_net_rules = landlock_plan
        .as_ref()
        .is_some_and(|lp| !lp.handled_net.is_empty());
    // A network with a way out, under Landlock's TCP rules: say which ports it leaves.
    if let (Some(n), Some(lp)) = (config.network.as_ref(), landlock_plan.as_ref()) {
        if matches!(n.net, network::Net::User | network::Net::Host) && landlock_net_rules {
            let ports: Vec<String> = lp.net.connect.iter().map(u16::to_string).collect();
            nw.notes.push(if ports.is_empty() {
                format!("net: {}: Landlock's TCP rules allow no connect port: every TCP connection is refused (landlock: net: connect lists the ports)", n.net.name())
            } else {
                format!("net: {}: Landlock allows TCP connections to ports {} only", n.net.name(), ports.join(", "))
            });
        }
    }

    // seccomp: the filter is compiled in `arm`; here only host support is decided.
    let sc = match asked.on(Layer::Seccomp, profile.seccomp.as_ref()) {
        None => planned(Layer::Seccomp, skip(Layer::Seccomp), Vec::new()),
        Some((req, policy)) => {
            let decision = seccomp::plan(policy, req, host);
            let mut notes = Vec::new();
            if decision.applies() {
                if !config.process.as_ref().is_some_and(|p| p.no_new_privs) {
                    notes.push("no_new_privs is set anyway: the kernel requires it to install a filter without CAP_SYS_ADMIN".into());
                }
                if landlock_net_rules {
                    notes.push(
                        "MPTCP sockets refused: Landlock's TCP rules do not cover them".into(),
                    );
                }
                let mut policy = policy.clone();
                policy.mode = req;
                config.seccomp = Some(policy);
            }
            planned(Layer::Seccomp, decision, notes)
        }
    };
    if let Some(gap) = config
        .landlock
        .as_ref()
        .and_then(|p| landlock::mptcp_gap(p, &sc.decision))
    {
        ll.notes.push(gap);
    }

    // The payload's rlimits: cgroup limits the host cannot give, approximated by rlimits.
    let mut limits = config
        .rlimits
        .as_ref()
        .map(|c| c.limits.clone())
        .unwrap_or_default();
    for f in &fallback {
        use nix::sys::resource::Resource;
        let limit = match f.resource {
            Resource::RLIMIT_AS => Limit::As,
            Resource::RLIMIT_NPROC => Limit::Nproc,
            Resource::RLIMIT_CPU => Limit::Cpu,
            _ => continue,
        };
        match limits.iter_mut().find(|(l, _)| *l == limit) {
            Some((_, v)) => *v = Some(v.map_or(f.limit, |old| old.min(f.limit))),
            None => limits.push((limit, Some(f.limit))),
        }
    }

    let userns = kinds.contains(&Kind::User);
    let identity = identity::identity(profile.namespaces.as_ref(), host, userns);
    let hostname = kinds
        .contains(&Kind::Uts)
        .then(|| config.namespaces.as_ref().map(|c| c.hostname.clone()))
        .flatten();
    // The working directory is where the payload starts, not a defense: with the process
    // layer off (`--without process`) the profile's (or --bind-cwd's) still holds.
    let asked_cwd = profile.process.as_ref().and_then(|c| c.cwd.as_ref());
    let mut pr = pr;
    if let (Some(dir), false) = (asked_cwd, pr.decision.applies()) {
        pr.notes.push(format!(
            "the payload still starts in {dir}: the working directory is not a defense of this layer"
        ));
    }
    let cwd = match asked_cwd {
        Some(p) => p.as_str().to_string(),
        None if fs_plan.is_some() => "/".to_string(),
        None => std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into()),
    };
    let mut plan = Plan {
        profile: profile.name.clone(),
        overriding_files: profile.overriding_files(),
        description: profile.description.clone(),
        extends: profile.extends.clone(),
        layers: vec![nw, fs, cg, ns, rl, caps, pr, ll, sc],
        namespaces: kinds,
        identity,
        fresh_proc,
        hostname,
        timeout,
        cwd,
        as_root: host.is_root,
        cap_last_cap: host.cap_last_cap,
        config,
        filesystem: fs_plan,
        cgroup,
        cgroup_sweep,
        cgroup_explain,
        cgroup_unenforced,
        rlimits: limits,
        landlock: landlock_plan,
        landlock_net_rules,
        pasta,
        warnings: Vec::new(),
    };
    identity_notes(&mut plan, profile, host);
    idmap::decide(&mut plan);
    plan.warnings = checks::warnings(&plan);
    plan
}

/// What the namespaces layer tells about ids: host root, picked host ids, host ids that
/// do not apply without root.
fn identity_notes(plan: &mut Plan, profile: &Profile, host: &Host) {
    let cfg = profile.namespaces.as_ref();
    let mut notes = Vec::new();
    if host.is_root {
        if cfg.is_some_and(|c| c.run_as_host_root) && plan.identity.host_ids_if_root().is_none() {
            notes.push("WARNING: the payload runs as host root (run-as-host-root: true): it can write host /proc/sys and own any file it is given".to_string());
        }
        if let Some((first, last)) = plan.identity.pick_host_ids {
            notes.push(format!(
                "host ids: a uid and gid of its own for this run, from {first}-{last}"
            ));
            // The id's lock lives as long as the supervisor. Only a pid namespace ends every
            // process of the run when it goes (init's death kills the namespace): without
            // one, processes that outlive a killed supervisor would keep a uid the next run
            // is then given.
            if !plan.namespaces.contains(&Kind::Pid) {
                plan.get_mut(Layer::Namespaces).decision = Decision::Refuse(
                    "host-uid: auto needs the pid namespace: without it the run's processes can outlive the supervisor, and the next run could be given their uid while they live (fix: pid: true, or a fixed host-uid)".into(),
                );
            }
        }
    } else if cfg.is_some_and(|c| {
        !matches!(
            c.host_ids,
            namespaces::HostIds::Fixed {
                uid: 65534,
                gid: 65534
            }
        )
    }) {
        notes.push("host-uid/host-gid apply only when lasagna runs as root; here the payload maps to your own uid".into());
    }
    plan.get_mut(Layer::Namespaces).notes.extend(notes);
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
