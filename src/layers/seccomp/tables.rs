//! Syscall names, numbers and systemd's groups, parsed from the generated data files beside
//! this module (see `tools/gen-syscall-groups.sh`). Nothing here is typed by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const GROUPS: &str = include_str!("groups.txt");
const X86_64: &str = include_str!("syscalls-x86_64.txt");
const AARCH64: &str = include_str!("syscalls-aarch64.txt");

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
        static X: OnceLock<SyscallTable> = OnceLock::new();
        static A: OnceLock<SyscallTable> = OnceLock::new();
        match self {
            Arch::X86_64 => X.get_or_init(|| SyscallTable::parse(X86_64)),
            Arch::Aarch64 => A.get_or_init(|| SyscallTable::parse(AARCH64)),
        }
    }
}

/// Name → number for one architecture.
#[derive(Debug)]
pub struct SyscallTable {
    by_name: BTreeMap<&'static str, u32>,
    by_nr: BTreeMap<u32, &'static str>,
}

impl SyscallTable {
    fn parse(text: &'static str) -> SyscallTable {
        let mut by_name = BTreeMap::new();
        let mut by_nr = BTreeMap::new();
        for line in data_lines(text) {
            let mut it = line.split_whitespace();
            if let (Some(name), Some(nr)) = (it.next(), it.next().and_then(|n| n.parse().ok())) {
                by_name.insert(name, nr);
                by_nr.insert(nr, name);
            }
        }
        SyscallTable { by_name, by_nr }
    }

    pub fn nr(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, nr: u32) -> Option<&'static str> {
        self.by_nr.get(&nr).copied()
    }

    /// The highest number in the table.
    pub fn max_nr(&self) -> u32 {
        self.by_nr.keys().next_back().copied().unwrap_or(0)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

/// One of systemd's syscall groups.
#[derive(Debug)]
pub struct Group {
    pub name: &'static str,
    pub description: &'static str,
    /// Syscall names and nested `@group` names, as listed.
    pub members: Vec<&'static str>,
}

pub fn groups() -> &'static BTreeMap<&'static str, Group> {
    static G: OnceLock<BTreeMap<&'static str, Group>> = OnceLock::new();
    G.get_or_init(|| {
        let mut map = BTreeMap::new();
        let mut current: Option<Group> = None;
        for line in data_lines(GROUPS) {
            if let Some(rest) = line.strip_prefix('@').filter(|_| line.contains("  # ")) {
                let (name, description) = rest.split_once("  # ").unwrap_or((rest, ""));
                if let Some(g) = current.take() {
                    map.insert(g.name, g);
                }
                current = Some(Group {
                    name: &line[..name.len() + 1],
                    description,
                    members: Vec::new(),
                });
            } else if let Some(g) = current.as_mut() {
                g.members.push(line.trim());
            }
        }
        if let Some(g) = current.take() {
            map.insert(g.name, g);
        }
        map
    })
}

/// Every syscall name a group expands to (nested groups included), for any architecture.
pub fn expand_group(name: &str) -> Option<BTreeSet<&'static str>> {
    fn walk(name: &str, out: &mut BTreeSet<&'static str>, seen: &mut BTreeSet<String>) -> bool {
        let Some(group) = groups().get(name) else {
            return false;
        };
        if !seen.insert(name.to_string()) {
            return true;
        }
        for member in &group.members {
            if member.starts_with('@') {
                walk(member, out, seen);
            } else {
                out.insert(member);
            }
        }
        true
    }
    let mut out = BTreeSet::new();
    walk(name, &mut out, &mut BTreeSet::new()).then_some(out)
}

/// Whether `name` is a syscall on some architecture (so a profile naming it stays portable).
pub fn known_anywhere(name: &str) -> bool {
    Arch::X86_64.table().nr(name).is_some()
        || Arch::Aarch64.table().nr(name).is_some()
        || expand_group("@known").is_some_and(|k| k.contains(name))
}

fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

/// The closest known name to `wrong` within a small edit distance, for "did you mean".
pub fn suggest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wrong.len() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits plus adjacent transpositions ("opne" → "open" is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
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
