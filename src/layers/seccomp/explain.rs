//! Plain-words lines for `explain` and `run --dry-run`, the host facts for `lasagna doctor`,
//! and the syscall groups for `lasagna schema`.

use std::collections::BTreeSet;

use nix::errno::Errno;
use seccompiler::SeccompAction;

use crate::sys::seccomp as sys;
use crate::types::Requirement;

use super::plan::edges;
use super::section::{Config, Dangerous};
use super::tables;

/// systemd's syscall groups usable in `allow`, with their descriptions (for `lasagna schema`
/// and the docs).
pub fn syscall_groups() -> Vec<(&'static str, &'static str)> {
    tables::groups()
        .iter()
        .map(|g| (g.name, g.description))
        .collect()
}

/// What the policy stops and what it does not, in plain words.
pub fn explain(policy: &Config) -> Vec<String> {
    let table = policy.arch.table();
    let mut out = Vec::new();
    if policy.mode == Requirement::Off {
        out.push("seccomp: off; every syscall is allowed".into());
        return out;
    }
    let conditional: BTreeSet<&str> = policy
        .allow_ifs
        .iter()
        .filter_map(|r| table.name(r.nr))
        .collect();
    out.push(format!(
        "{} syscalls allowed with any arguments, {} more only with checked arguments{}",
        policy.allowed.len(),
        conditional.len(),
        if conditional.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                conditional.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    ));
    out.push(format!(
        "any other syscall {} (newer ones than this table, up to {}: ENOSYS)",
        describe_action(&policy.default_action),
        table.name(table.max_nr()).unwrap_or("?"),
    ));
    for rule in &policy.denies {
        let name = table.name(rule.nr).unwrap_or("?");
        let when = if rule.checks.is_empty() {
            String::new()
        } else {
            format!(" when {} argument check(s) hold", rule.checks.len())
        };
        out.push(format!("{name}{when}: {}", describe_action(&rule.action)));
    }
    out.push(format!(
        "always blocked, whatever the allow list says: i386/x32/foreign-arch syscalls (kill); \
         {}mount API old and new, chroot, pivot_root; unshare, setns, clone with CLONE_NEW* \
         flags, clone3 (ENOSYS, so libc uses clone); keyctl, add_key, request_key; bpf; \
         perf_event_open; userfaultfd; kexec and kernel modules; open_by_handle_at, \
         name_to_handle_at; ioctl TIOCSTI and TIOCLINUX (cmd compared on 32 bits); \
         personality other than the default; AF_VSOCK sockets; MPTCP sockets when Landlock \
         TCP rules are in use",
        Dangerous::ALL
            .iter()
            .filter(|d| !policy.opt_in.contains(d))
            .map(|d| match d {
                Dangerous::SetuidFiles => "setting S_ISUID or S_ISGID on a file (chmod family, \
                                           and open/openat/creat/mkdir/mknod creating with \
                                           them: EPERM; openat2: ENOSYS), "
                    .to_string(),
                _ => format!("{}, ", d.syscalls().join("/")),
            })
            .collect::<String>()
    ));
    for d in &policy.opt_in {
        out.push(format!(
            "allowed by allow-dangerous: {} ({})",
            d.syscalls().join(", "),
            match d {
                Dangerous::IoUring =>
                    "io_uring operations are not seen by seccomp: the filter no longer bounds \
                     what the payload can do through them",
                Dangerous::Ptrace => "the payload can trace and read other sandboxed processes",
                Dangerous::SetuidFiles =>
                    "the payload can leave setuid or setgid files in a writable bind: on the \
                     host any user runs them as their owner (nosuid holds only inside)",
            }
        ));
    }
    let overridden: Vec<&str> = edges(true)
        .iter()
        .filter(|e| e.checks.is_empty() && e.lifted_by.is_none_or(|d| !policy.opt_in.contains(&d)))
        .filter_map(|e| {
            table
                .nr(e.syscall)
                .filter(|nr| policy.allowed.contains_key(nr))
        })
        .filter_map(|nr| table.name(nr))
        .collect();
    if !overridden.is_empty() {
        out.push(format!(
            "in the allow list (directly or through a group) but blocked as dangerous: {}",
            overridden.join(", ")
        ));
    }
    if let Some(path) = &policy.import {
        out.push(format!(
            "rules imported from {} ({} capability- or arch-gated rules left out)",
            path.display(),
            policy.imported_skipped
        ));
    }
    if !policy.other_arch_names.is_empty() {
        out.push(format!(
            "not on {}, left out: {}",
            policy.arch.name(),
            policy
                .other_arch_names
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push(
        "does not stop: what allowed syscalls do with their pointer arguments (paths, \
         buffers): that is for landlock and the filesystem layer"
            .into(),
    );
    out
}

/// What `policy` needs of this host, as `doctor PROFILE`'s line (the host gives it, what,
/// fix): every action its filter can return, among those the kernel offers.
pub fn needs(policy: &Config, host: &crate::host::Host) -> (bool, String, Option<String>) {
    let actions: Vec<&str> = policy.actions().into_iter().collect();
    match &host.seccomp {
        Err(why) => (
            false,
            format!("the filter needs seccomp filtering: {why}"),
            Some("a kernel built with CONFIG_SECCOMP_FILTER".into()),
        ),
        Ok(avail) => {
            let lacking: Vec<&str> = actions
                .iter()
                .copied()
                .filter(|a| !avail.iter().any(|x| x == a))
                .collect();
            if lacking.is_empty() {
                (
                    true,
                    format!(
                        "the filter's actions ({}) are all in the kernel's actions_avail",
                        actions.join(" ")
                    ),
                    None,
                )
            } else {
                (
                    false,
                    format!(
                        "the filter returns {}, which the kernel lacks (actions_avail: {})",
                        lacking.join(", "),
                        avail.join(" ")
                    ),
                    Some("run on a newer kernel, or deny with errno/kill_process only".into()),
                )
            }
        }
    }
}

/// Host facts for `lasagna doctor`.
pub fn doctor() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    let mut out = Vec::new();
    out.push((
        "seccomp filter".into(),
        match sys::get_seccomp_mode() {
            Ok(0) => "supported; this process is not filtered".into(),
            Ok(2) => "supported; this process already runs under a filter".into(),
            Ok(n) => format!("supported; this process is in seccomp mode {n}"),
            Err(e) => format!("not supported (prctl PR_GET_SECCOMP: {e})"),
        },
    ));
    out.push((
        "seccomp actions".into(),
        read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_else(|e| format!("unknown: {e}")),
    ));
    out.push((
        "kernel.io_uring_disabled".into(),
        match read("/proc/sys/kernel/io_uring_disabled").as_deref() {
            Ok("0") => "0: io_uring open to every process (lasagna's filter blocks it)".into(),
            Ok("1") => "1: io_uring only for CAP_SYS_ADMIN or kernel.io_uring_group".into(),
            Ok("2") => "2: io_uring disabled for everyone".into(),
            Ok(v) => format!("{v}: unknown value"),
            Err(e) => format!("not present (kernel before 6.6?): {e}"),
        },
    ));
    out.push((
        "dev.tty.legacy_tiocsti".into(),
        match read("/proc/sys/dev/tty/legacy_tiocsti").as_deref() {
            Ok("0") => "0: TIOCSTI needs CAP_SYS_ADMIN (lasagna's filter blocks it anyway)".into(),
            Ok("1") => "1: TIOCSTI allowed to all (lasagna's filter blocks it)".into(),
            Ok(v) => format!("{v}: unknown value"),
            Err(_) => "not present (kernel before 6.2): TIOCSTI allowed to all; \
                       lasagna's filter blocks it"
                .into(),
        },
    ));
    out
}

fn describe_action(a: &SeccompAction) -> String {
    match a {
        SeccompAction::Allow => "allowed".into(),
        SeccompAction::Errno(n) => format!("fails with {:?}", Errno::from_raw(*n as i32)),
        SeccompAction::KillThread => "kills the thread".into(),
        SeccompAction::KillProcess => "kills the process".into(),
        SeccompAction::Log => "allowed and logged".into(),
        SeccompAction::Trace(_) => "passed to a tracer".into(),
        SeccompAction::Trap => "raises SIGSYS".into(),
    }
}
