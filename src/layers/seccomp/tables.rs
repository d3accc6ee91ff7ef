//! Syscall names, numbers and systemd's groups. The data files beside this module
//! (`groups.txt`, `syscalls-*.txt`, written by `tools/gen-syscall-groups.sh`) are turned into
//! static sorted arrays by `build.rs`: nothing here is typed by hand, and nothing is parsed
//! or allocated at run time. Names are ids into one sorted list, so a lookup is a binary
//! search and a group's members map to numbers by indexing.

include!(concat!(env!("OUT_DIR"), "/seccomp_tables.rs"));

/// "No such number" / "no such name" in the generated arrays.
const NONE: u16 = u16::MAX;

/// The architectures a filter can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    #[cfg(target_arch = "aarch64")]
    pub const NATIVE: Arch = Arch::Aarch64;
    /// The architecture this binary runs on.
    #[cfg(not(target_arch = "aarch64"))]
    pub const NATIVE: Arch = Arch::X86_64;

    /// `AUDIT_ARCH_*` from linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 62 | 0x8000_0000 | 0x4000_0000,
            Arch::Aarch64 => 183 | 0x8000_0000 | 0x4000_0000,
        }
    }

    /// The name OCI seccomp profiles use (Go's GOARCH).
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn table(self) -> &'static SyscallTable {
        static X: SyscallTable = SyscallTable {
            nr_by_id: &X86_64_NR_BY_ID,
            id_by_nr: &X86_64_ID_BY_NR,
        };
        static A: SyscallTable = SyscallTable {
            nr_by_id: &AARCH64_NR_BY_ID,
            id_by_nr: &AARCH64_ID_BY_NR,
        };
        match self {
            Arch::X86_64 => &X,
            Arch::Aarch64 => &A,
        }
    }
}

/// The syscall name with id `id` (its rank among all names).
pub fn name_of(id: u16) -> &'static str {
    let i = usize::from(id);
    &NAMES[usize::from(NAME_STARTS[i])..usize::from(NAME_STARTS[i + 1])]
}

/// The id of a syscall name that some table or group knows.
fn id_of(name: &str) -> Option<u16> {
    let (mut lo, mut hi) = (0, NAME_COUNT);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match name_of(mid as u16).cmp(name) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid as u16),
        }
    }
    None
}

/// Name → number for one architecture.
#[derive(Debug)]
pub struct SyscallTable {
    /// Name id → number, `NONE` where this architecture lacks the call.
    nr_by_id: &'static [u16],
    /// Number → name id, `NONE` for unassigned numbers; ends at the highest number.
    id_by_nr: &'static [u16],
}

impl SyscallTable {
    pub fn nr(&self, name: &str) -> Option<u32> {
        id_of(name).and_then(|id| self.nr_of(id))
    }

    /// The number of the name with id `id` on this architecture.
    pub fn nr_of(&self, id: u16) -> Option<u32> {
        match self.nr_by_id[usize::from(id)] {
            NONE => None,
            nr => Some(u32::from(nr)),
        }
    }

    pub fn name(&self, nr: u32) -> Option<&'static str> {
        let id = *self.id_by_nr.get(usize::try_from(nr).ok()?)?;
        (id != NONE).then(|| name_of(id))
    }

    /// The highest number in the table.
    pub fn max_nr(&self) -> u32 {
        self.id_by_nr.len().saturating_sub(1) as u32
    }

    /// This architecture's syscall names, in name order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..NAME_COUNT as u16)
            .filter(|&id| self.nr_by_id[usize::from(id)] != NONE)
            .map(name_of)
    }
}

/// One of systemd's syscall groups.
#[derive(Debug)]
pub struct Group {
    pub name: &'static str,
    pub description: &'static str,
    /// Every syscall the group expands to, nested groups included: name ids in name order.
    syscalls: &'static [u16],
}

/// All groups, in name order.
pub fn groups() -> &'static [Group] {
    &GROUPS
}

/// The syscall names a group expands to, for any architecture.
#[derive(Debug, Clone, Copy)]
pub struct Expansion(&'static [u16]);

impl Expansion {
    pub fn contains(&self, name: &str) -> bool {
        id_of(name).is_some_and(|id| self.0.binary_search(&id).is_ok())
    }

    /// Name ids, in name order.
    pub fn ids(&self) -> &'static [u16] {
        self.0
    }
}

/// Every syscall name a group expands to (nested groups included), for any architecture.
pub fn expand_group(name: &str) -> Option<Expansion> {
    GROUPS
        .binary_search_by(|g| g.name.cmp(name))
        .ok()
        .map(|i| Expansion(GROUPS[i].syscalls))
}

/// Whether `name` is a syscall on some architecture (so a profile naming it stays portable).
pub fn known_anywhere(name: &str) -> bool {
    Arch::X86_64.table().nr(name).is_some()
        || Arch::Aarch64.table().nr(name).is_some()
        || expand_group("@known").is_some_and(|k| k.contains(name))
}

/// The closest known name to `wrong`, for "did you mean".
pub fn suggest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    crate::text::suggest(wrong, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_known_numbers() {
        let x = Arch::X86_64.table();
        assert_eq!(x.nr("read"), Some(0));
        assert_eq!(x.nr("execve"), Some(59));
        assert_eq!(x.nr("io_uring_setup"), Some(425));
        // Newer than seccompiler 0.5's table (Linux 6.12).
        assert_eq!(x.nr("file_setattr"), Some(469));
        assert_eq!(x.name(59), Some("execve"));
        let a = Arch::Aarch64.table();
        assert_eq!(a.nr("openat"), Some(56));
        assert_eq!(a.nr("open"), None);
    }

    #[test]
    fn groups_nest_and_expand() {
        let service = expand_group("@system-service").unwrap();
        for name in [
            "read", "openat", "execve", "clone", "socket", "kill", "ioctl",
        ] {
            assert!(service.contains(name), "@system-service lacks {name}");
        }
        assert!(!service.contains("mount"));
        assert!(expand_group("@basic-io").unwrap().contains("read"));
        assert!(expand_group("@nope").is_none());
        assert!(groups().len() > 25);
    }

    #[test]
    fn suggestions() {
        let x = Arch::X86_64.table();
        assert_eq!(suggest("opne", x.names()), Some("open"));
        assert_eq!(suggest("exceve", x.names()), Some("execve"));
        assert_eq!(suggest("zzzzzzzzzz", x.names()), None);
        assert!(known_anywhere("futex_time64"));
        assert!(!known_anywhere("opne"));
    }
}
