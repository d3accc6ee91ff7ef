//! Which binds are idmapped on this run ([`crate::layers::filesystem::idmap`]): the view
//! marks every bind whose entry asks; here the marks stay only where lasagna runs as root
//! for an unprivileged payload, and, for a writable bind, where the other layers stop the
//! payload from turning the owner's ids into a privilege on the host.

use crate::launch::Layer;
use crate::layers::filesystem::idmap::MAX_TREES;
use crate::layers::filesystem::view::What;
use crate::layers::filesystem::BindAccess;
use crate::layers::seccomp::Dangerous;

use super::Plan;

/// Why a writable idmapped bind would not be safe on this plan, if it would not be.
fn writable_risk(plan: &Plan) -> Option<&'static str> {
    let setuid_edge = plan.applies(Layer::Seccomp)
        && plan
            .config
            .seccomp
            .as_ref()
            .is_some_and(|s| !s.opt_in.contains(&Dangerous::SetuidFiles));
    if !setuid_edge {
        return Some(
            "without seccomp's setuid-files edge the payload could leave a setuid or setgid \
             file there that runs as the owner on the host",
        );
    }
    let caps = plan
        .config
        .capabilities
        .as_ref()
        .filter(|_| plan.applies(Layer::Capabilities));
    let setfcap = match caps {
        Some(c) => c.keep.contains(&caps::Capability::CAP_SETFCAP),
        // Without the capabilities layer only a payload that is uid 0 inside keeps
        // capabilities across execve.
        None => plan.identity.uid == 0,
    };
    if setfcap {
        return Some(
            "the payload may hold CAP_SETFCAP, and a file capability it sets there would be \
             written with the owner as its root",
        );
    }
    None
}

/// Clear the idmap of every bind that cannot have one on this plan, with a note where it
/// was asked for and is left out; note each bind that stays idmapped.
pub(super) fn decide(plan: &mut Plan) {
    let payload = plan
        .identity
        .host_ids_if_root()
        .filter(|_| plan.as_root && plan.applies(Layer::Filesystem));
    let who = match (plan.identity.pick_host_ids, payload) {
        (Some(_), _) => "the host uid picked for this run".to_string(),
        (None, Some((uid, _))) => format!("host uid {uid}"),
        (None, None) => String::new(),
    };
    // Root for itself, or not root at all: the payload's writes are its caller's already.
    let possible = payload.is_some_and(|(uid, _)| uid != 0);
    let writable_risk_now = writable_risk(plan);
    let Some(fs) = plan.filesystem.as_mut() else {
        return;
    };
    let mut notes = Vec::new();
    // As root the supervisor opens every bind source itself, up to the number of trees
    // the child can hold; beyond that the child opens them and nothing is idmapped.
    let binds = fs
        .entries
        .iter()
        .filter(|e| matches!(e.what, What::Bind { .. }))
        .count();
    fs.trees_by_supervisor = plan.as_root && binds <= MAX_TREES;
    let possible = possible && fs.trees_by_supervisor;
    if plan.as_root && binds > MAX_TREES {
        notes.push(format!(
            "{binds} binds: the child opens each source itself (at most {MAX_TREES} are opened by the supervisor), and none is idmapped"
        ));
    }
    for e in &mut fs.entries {
        let What::Bind {
            source,
            access,
            idmap,
            ..
        } = &mut e.what
        else {
            continue;
        };
        let Some((uid, gid)) = *idmap else { continue };
        let shown = crate::text::escape(&source.display().to_string()).into_owned();
        if !possible || payload == Some((uid, gid)) {
            *idmap = None;
            continue;
        }
        let left_out = match (*access, writable_risk_now) {
            (BindAccess::ReadWrite | BindAccess::Devices, Some(why)) => Some(why),
            _ => None,
        };
        if let Some(why) = left_out {
            *idmap = None;
            notes.push(format!(
                "{} not idmapped: {why}; the payload writes there as {who} (set `idmap: false` \
                 on the entry to say so)",
                e.target
            ));
            continue;
        }
        notes.push(format!(
            "{} idmapped: host {shown}'s owner (uid {uid}, gid {gid}) is the payload's ids on \
             it, so what the payload writes there is the owner's; the payload stays {who} \
             everywhere else",
            e.target
        ));
    }
    plan.get_mut(Layer::Filesystem).notes.extend(notes);
}
