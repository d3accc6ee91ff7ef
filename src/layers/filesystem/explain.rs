//! Plain-words lines for `explain` and `run --dry-run`: what the profile's filesystem
//! section builds and what it stops.

use super::{Config, FsPlan, Guard};

/// Plain-words description for `explain`; `view`: the plan on this host, which names the
/// guarded paths it keeps read-only.
pub fn explain(cfg: &Config, fresh_proc: bool, view: Option<&FsPlan>) -> Vec<String> {
    let mut out = vec!["the sandbox sees a new, empty root (tmpfs) instead of the host's; the host root is detached after pivot_root".to_string()];
    for op in &cfg.ops {
        out.push(op.describe());
    }
    for class in Guard::ALL {
        let kept: Vec<String> = view
            .iter()
            .flat_map(|v| &v.kept)
            .filter(|k| k.class == class)
            .map(|k| {
                if k.masked {
                    format!("{} (masked: not there)", k.target)
                } else {
                    k.target.to_string()
                }
            })
            .collect();
        if !kept.is_empty() {
            out.push(format!(
                "kept read-only inside the writable binds, {} ({}): {}; `unprotect: [{}]` \
                 leaves them writable",
                class.describe(),
                class.why(),
                kept.join(", "),
                class.key()
            ));
        }
    }
    for class in &cfg.unprotect {
        out.push(format!(
            "unprotect: {}: writable where a writable bind shows it ({})",
            class.key(),
            class.why()
        ));
    }
    if cfg.proc {
        let which = if fresh_proc {
            "a fresh /proc of the sandbox's own pid namespace"
        } else {
            "the host's /proc, bound in (there is no new pid namespace): host processes are visible in it"
        };
        out.push(format!("{which}; /proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus, /proc/fs read-only; /proc/kcore, /proc/keys, /proc/timer_list and similar masked"));
    }
    if cfg.dev {
        out.push(format!(
            "minimal /dev: null, zero, full, random, urandom, tty, a private pts instance, ptmx, a private /dev/shm of {} MiB",
            cfg.dev_shm_size >> 20
        ));
    }
    if cfg.read_only_root {
        out.push(
            "the root itself is read-only: only the writable mounts above accept writes".into(),
        );
    }
    out.push("stops: reading or writing host files that are not bound in; setuid bits and device nodes on binds (nosuid, nodev)".into());
    out.push("does not stop: what the payload does with the files it was given; fine-grained rights (landlock)".into());
    out
}
