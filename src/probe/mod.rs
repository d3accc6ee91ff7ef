//! The probes of `lasagna test`: real attempts made from inside a sandbox, each declaring
//! the layers expected to stop it, and how its success is known.
//!
//! The probe side runs as `lasagna probe NAME ARGS...`: the static lasagna binary, bound
//! into the sandbox by the harness at [`PROBE_PATH`], so a probe needs nothing from the
//! profile's view. It prints `READY` first (a run without it is a harness error, never a
//! stop), then what it reached. Whether a probe got through is decided by the harness from
//! evidence it can check ([`Evidence`]): a secret only the host holds appearing in the
//! output, a host file changed, a host process gone, a host listener reached. Only the
//! probes that test what the kernel lets the process do (open a raw socket, create a user
//! namespace) report the kernel's answer (`RESULT open` / `RESULT blocked`).

mod inside;

pub use inside::{exec_proof, main as run_inside};

/// The first argument of the probe when the kernel starts it as the interpreter of the
/// `exec-host-file` script.
pub const EXEC_PROOF: &str = "exec-proof:";

use crate::launch::Layer;

/// Where the harness binds the probe binary inside the sandbox: a top-level directory no
/// profile mounts (the harness refuses a profile that mounts on or under it).
pub const PROBE_DIR: &str = "/.lasagna-test";
pub const PROBE_PATH: &str = "/.lasagna-test/probe";

/// How the harness knows a probe got through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// A secret the harness planted (a file's content, an environment value, a process's
    /// command line) appears in the probe's output: only reaching it could print it.
    Secret(Secret),
    /// The harness checks the host after the run (a file written or created, a process
    /// killed, a listener connected to, a byte pushed into its terminal).
    Host(HostCheck),
    /// The kernel's answer to the attempt, as the probe saw it (`RESULT open`).
    Kernel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The content of the secret file in the canary directory.
    File,
    /// The command line of the host sleeper.
    HostProcess,
    /// The value of `LASAGNA_TEST_CANARY` in lasagna's own environment.
    Environment,
    /// The host's hostname.
    Hostname,
    /// The command line of the sibling sandbox's payload.
    SiblingProcess,
    /// The file the sibling sandbox wrote into its own /tmp.
    SiblingFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCheck {
    /// The run's own file in the canary directory no longer holds what was planted.
    FileChanged,
    /// The run's own empty directory in the canary directory has an entry.
    DirCreated,
    /// The run's host sleeper died.
    HostSleeperKilled,
    /// The run's sibling sandbox ended early.
    SiblingKilled,
    /// The run's TCP listener on 127.0.0.1 accepted a connection.
    TcpConnected,
    /// The run's abstract unix socket accepted a connection.
    AbstractConnected,
    /// The run's pathname unix socket in the canary directory accepted a connection.
    PathnameConnected,
    /// The byte the probe pushed arrived in the terminal lasagna was started on.
    TtyInjected,
}

/// What a probe needs the harness to set up for its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    pub host_sleeper: bool,
    pub sibling: bool,
    pub tty: bool,
    /// Resource-hungry: at most two of these at once.
    pub heavy: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub name: &'static str,
    pub category: &'static str,
    /// What the attempt is, in a few words.
    pub what: &'static str,
    /// The layers expected to stop it on their own; empty when lasagna itself does (the
    /// launcher closes inherited fds whatever the profile says).
    pub expect: &'static [Layer],
    pub evidence: Evidence,
    pub needs: Needs,
}

const fn needs(host_sleeper: bool, sibling: bool, tty: bool, heavy: bool) -> Needs {
    Needs {
        host_sleeper,
        sibling,
        tty,
        heavy,
    }
}
const NONE: Needs = needs(false, false, false, false);
const SLEEPER: Needs = needs(true, false, false, false);
const SIBLING: Needs = needs(false, true, false, false);
const HEAVY: Needs = needs(false, false, false, true);

use Evidence::{Host, Kernel};
use Layer::{
    Capabilities, Cgroups, Filesystem, Landlock, Namespaces, Network, Process, Rlimits, Seccomp,
};

macro_rules! probe {
    ($name:literal, $cat:literal, $what:literal, [$($l:ident),*], $ev:expr, $needs:expr) => {
        Probe {
            name: $name,
            category: $cat,
            what: $what,
            expect: &[$($l),*],
            evidence: $ev,
            needs: $needs,
        }
    };
}

/// Every probe, grouped by what it attacks.
pub const PROBES: &[Probe] = &[
    // Files outside the view.
    probe!(
        "read-host-file",
        "files",
        "read a host file by its path",
        [Filesystem, Landlock],
        Evidence::Secret(Secret::File),
        NONE
    ),
    probe!(
        "write-host-file",
        "files",
        "overwrite a world-writable host file",
        [Filesystem, Landlock],
        Host(HostCheck::FileChanged),
        NONE
    ),
    probe!(
        "create-host-file",
        "files",
        "create a file in a world-writable host directory",
        [Filesystem, Landlock],
        Host(HostCheck::DirCreated),
        NONE
    ),
    probe!(
        "exec-host-file",
        "files",
        "execute a host script",
        [Filesystem, Landlock],
        Evidence::Secret(Secret::File),
        NONE
    ),
    probe!(
        "proc-root",
        "files",
        "read the host file through /proc/PID/root of a host process",
        [Namespaces, Filesystem, Landlock],
        Evidence::Secret(Secret::File),
        SLEEPER
    ),
    probe!(
        "leaked-file-fd",
        "files",
        "read an inherited descriptor of the host file",
        [],
        Evidence::Secret(Secret::File),
        NONE
    ),
    probe!(
        "leaked-dir-fd",
        "files",
        "openat below an inherited descriptor of the host directory",
        [],
        Evidence::Secret(Secret::File),
        NONE
    ),
    // Host processes.
    probe!(
        "see-host-process",
        "processes",
        "list a host process and its command line",
        [Namespaces],
        Evidence::Secret(Secret::HostProcess),
        SLEEPER
    ),
    probe!(
        "signal-host-process",
        "processes",
        "SIGKILL a host process of the same uid",
        [Namespaces, Landlock],
        Host(HostCheck::HostSleeperKilled),
        SLEEPER
    ),
    probe!(
        "ptrace-host-process",
        "processes",
        "ptrace a host process of the same uid",
        [Namespaces, Landlock, Seccomp],
        Kernel,
        SLEEPER
    ),
    // Network.
    probe!(
        "tcp-host-loopback",
        "network",
        "connect to a listener on the host's 127.0.0.1",
        [Network, Namespaces, Landlock],
        Host(HostCheck::TcpConnected),
        NONE
    ),
    probe!(
        "abstract-unix-socket",
        "network",
        "connect to a host abstract unix socket",
        [Network, Namespaces, Landlock],
        Host(HostCheck::AbstractConnected),
        NONE
    ),
    probe!(
        "pathname-unix-socket",
        "network",
        "connect to a host unix socket file",
        [Filesystem, Landlock],
        Host(HostCheck::PathnameConnected),
        NONE
    ),
    probe!(
        "raw-socket",
        "network",
        "open a raw IPv4 socket",
        [Capabilities, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "packet-socket",
        "network",
        "open an AF_PACKET socket",
        [Capabilities, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "low-port",
        "network",
        "bind a port below 1024",
        [Capabilities, Landlock],
        Kernel,
        NONE
    ),
    // Privilege.
    probe!(
        "capabilities",
        "privilege",
        "hold any effective capability",
        [Capabilities],
        Kernel,
        NONE
    ),
    probe!(
        "setuid-gain",
        "privilege",
        "no_new_privs unset: a setuid or file-capability helper would gain privileges",
        [Process, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "nested-userns",
        "privilege",
        "create a nested user namespace",
        [Namespaces, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "mount",
        "privilege",
        "mount a tmpfs",
        [Capabilities, Landlock, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "pivot-root",
        "privilege",
        "call pivot_root",
        [Capabilities, Landlock, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "chroot-escape",
        "privilege",
        "chroot, climb out with .., read the host file",
        [Filesystem, Capabilities, Seccomp],
        Evidence::Secret(Secret::File),
        NONE
    ),
    // Kernel surface.
    probe!("bpf", "kernel", "create a BPF map", [Seccomp], Kernel, NONE),
    probe!(
        "io-uring",
        "kernel",
        "set up an io_uring",
        [Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "keyctl",
        "kernel",
        "add a key to a keyring",
        [Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "perf-event",
        "kernel",
        "open a perf event",
        [Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "userfaultfd",
        "kernel",
        "create a userfaultfd",
        [Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "open-by-handle",
        "kernel",
        "open a file by handle, around path checks",
        [Capabilities, Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "x32-syscall",
        "kernel",
        "enter the kernel through the x32 ABI",
        [Seccomp],
        Kernel,
        NONE
    ),
    probe!(
        "tiocsti",
        "kernel",
        "push a byte into the terminal lasagna runs on",
        [Process, Seccomp],
        Host(HostCheck::TtyInjected),
        needs(false, false, true, false)
    ),
    // Resources.
    probe!(
        "fork-bomb",
        "resources",
        "start 3000 processes",
        [Cgroups, Rlimits],
        Kernel,
        HEAVY
    ),
    probe!(
        "memory",
        "resources",
        "touch 5 GiB of memory",
        [Cgroups],
        Kernel,
        HEAVY
    ),
    probe!(
        "cpu-unbounded",
        "resources",
        "no CPU-time limit: an endless loop runs until the timeout, if any",
        [Rlimits],
        Kernel,
        NONE
    ),
    probe!(
        "fds",
        "resources",
        "open 65536 descriptors",
        [Rlimits],
        Kernel,
        NONE
    ),
    probe!(
        "file-size",
        "resources",
        "write a byte at offset 1 GiB",
        [Rlimits],
        Kernel,
        NONE
    ),
    // Leaks.
    probe!(
        "environment",
        "leaks",
        "read a secret from lasagna's environment",
        [Process],
        Evidence::Secret(Secret::Environment),
        NONE
    ),
    probe!(
        "proc-sys-write",
        "leaks",
        "write a host sysctl (its own value)",
        [Namespaces, Filesystem],
        Kernel,
        NONE
    ),
    probe!(
        "hostname",
        "leaks",
        "read the host's hostname",
        [Namespaces],
        Evidence::Secret(Secret::Hostname),
        NONE
    ),
    // Between sandboxes of the same profile.
    probe!(
        "sibling-see",
        "siblings",
        "see the other sandbox's payload",
        [Namespaces],
        Evidence::Secret(Secret::SiblingProcess),
        SIBLING
    ),
    probe!(
        "sibling-signal",
        "siblings",
        "SIGKILL the other sandbox's payload",
        [Namespaces, Landlock],
        Host(HostCheck::SiblingKilled),
        SIBLING
    ),
    probe!(
        "sibling-ptrace",
        "siblings",
        "ptrace the other sandbox's payload",
        [Namespaces, Landlock, Seccomp],
        Kernel,
        SIBLING
    ),
    probe!(
        "sibling-files",
        "siblings",
        "read a file in the other sandbox's /tmp",
        [Filesystem],
        Evidence::Secret(Secret::SiblingFile),
        SIBLING
    ),
];

pub fn find(name: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_many_unique_and_cover_every_layer() {
        assert!(PROBES.len() >= 40, "{} probes", PROBES.len());
        let mut names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PROBES.len(), "probe names are unique");
        for layer in Layer::ALL {
            assert!(
                PROBES.iter().any(|p| p.expect.contains(&layer)),
                "no probe is expected to be stopped by {layer}"
            );
        }
        for p in PROBES {
            assert!(inside::knows(p.name), "{} has no inside half", p.name);
        }
    }
}
