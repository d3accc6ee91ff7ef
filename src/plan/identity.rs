//! Who the payload runs as: the ids inside a user namespace and on the host, and where
//! the switch to them happens. Decided in the plan from the namespaces section, the host
//! and whether a user namespace is created.

use serde::Serialize;

use crate::host::Host;
use crate::layers::namespaces::{self, HostIds, IdMaps};

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

/// The identity for a run: `cfg` is the namespaces section (even when that layer is off,
/// its ids say who the payload is); `userns`: a user namespace is created.
pub fn identity(cfg: Option<&namespaces::Config>, host: &Host, userns: bool) -> Identity {
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
