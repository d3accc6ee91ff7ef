// @generated from profiles/*.yaml by `make shipped`; do not edit.
// A test fails while this file and the YAML disagree.

#![allow(clippy::all, unused_imports)]

use crate::layers::{
    capabilities, cgroups, filesystem, landlock, namespaces, process, rlimits, seccomp,
};
use crate::profile::types::{Loc, Requirement, Spanned};
use crate::profile::{ProfileFile, Sections};

pub fn file(name: &str) -> Option<ProfileFile> {
    match name {
        "base" => Some(base()),
        "strict" => Some(strict()),
        "seccomp-default" => Some(seccomp_default()),
        _ => None,
    }
}

/// profiles/base.yaml
fn base() -> ProfileFile {
    ProfileFile {
        name: Some("base".into()),
        description: Some("the building block others extend - every namespace, a read-only system view, no capabilities, clean process".into()),
        extends: Some(Spanned {
            value: "seccomp-default".into(),
            loc: Loc { line: 2u64, column: 10u64 },
        }),
        command: None,
        layers: Sections {
            namespaces: Some(namespaces::Section {
                mode: Some(Requirement::Required),
                user: None,
                pid: None,
                net: None,
                ipc: None,
                uts: None,
                cgroup: None,
                time: None,
                hostname: Some(Spanned {
                    value: "sandbox".into(),
                    loc: Loc { line: 7u64, column: 15u64 },
                }),
                uid: Some(1000u32),
                gid: Some(1000u32),
                host_uid: None,
                host_gid: None,
            }),
            filesystem: Some(filesystem::Section {
                mode: Some(Requirement::Required),
                read_only_root: Some(true),
                proc: None,
                dev: None,
                mounts: vec![
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/usr".into(),
                            loc: Loc { line: 14u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: None,
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/bin".into(),
                            loc: Loc { line: 16u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/sbin".into(),
                            loc: Loc { line: 18u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/lib".into(),
                            loc: Loc { line: 20u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/lib64".into(),
                            loc: Loc { line: 22u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/lib32".into(),
                            loc: Loc { line: 24u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/etc/ld.so.cache".into(),
                            loc: Loc { line: 26u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/etc/ld.so.conf".into(),
                            loc: Loc { line: 28u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/etc/ld.so.conf.d".into(),
                            loc: Loc { line: 30u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/etc/alternatives".into(),
                            loc: Loc { line: 32u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: Some(Spanned {
                            value: "/etc/localtime".into(),
                            loc: Loc { line: 34u64, column: 18u64 },
                        }),
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: None,
                        optional: Some(true),
                    },
                    filesystem::MountEntry {
                        ro_bind: None,
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: Some(Spanned {
                            value: "/etc/passwd".into(),
                            loc: Loc { line: 36u64, column: 15u64 },
                        }),
                        mask: None,
                        source: None,
                        to: None,
                        content: Some("root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".into()),
                        size: None,
                        perms: None,
                        optional: None,
                    },
                    filesystem::MountEntry {
                        ro_bind: None,
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: Some(Spanned {
                            value: "/etc/group".into(),
                            loc: Loc { line: 41u64, column: 15u64 },
                        }),
                        mask: None,
                        source: None,
                        to: None,
                        content: Some("root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n".into()),
                        size: None,
                        perms: None,
                        optional: None,
                    },
                    filesystem::MountEntry {
                        ro_bind: None,
                        bind: None,
                        dev_bind: None,
                        tmpfs: None,
                        dir: None,
                        symlink: None,
                        file: Some(Spanned {
                            value: "/etc/hostname".into(),
                            loc: Loc { line: 46u64, column: 15u64 },
                        }),
                        mask: None,
                        source: None,
                        to: None,
                        content: Some("sandbox\n".into()),
                        size: None,
                        perms: None,
                        optional: None,
                    },
                    filesystem::MountEntry {
                        ro_bind: None,
                        bind: None,
                        dev_bind: None,
                        tmpfs: Some(Spanned {
                            value: "/tmp".into(),
                            loc: Loc { line: 48u64, column: 16u64 },
                        }),
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: None,
                        perms: Some(Spanned {
                            value: "1777".into(),
                            loc: Loc { line: 49u64, column: 16u64 },
                        }),
                        optional: None,
                    },
                ],
            }),
            cgroups: None,
            capabilities: Some(capabilities::Section { mode: Some(Requirement::Required), keep: None }),
            rlimits: Some(rlimits::Section {
                mode: Some(Requirement::Required),
                nofile: None,
                nproc: None,
                fsize: None,
                core: Some(Spanned { value: "0".into(), loc: Loc { line: 54u64, column: 11u64 } }),
                cpu: None,
                address_space: None,
                stack: None,
                memlock: None,
            }),
            process: Some(process::Section {
                mode: Some(Requirement::Required),
                no_new_privs: None,
                new_session: None,
                die_with_parent: None,
                close_fds: None,
                pass_fds: None,
                env: Some(process::EnvSection {
                    allow: None,
                    set: Some([
                        ("HOME".into(), "/tmp".into()),
                        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                    ].into_iter().collect()),
                }),
                cwd: Some(Spanned {
                    value: "/tmp".into(),
                    loc: Loc { line: 61u64, column: 10u64 },
                }),
                timeout: None,
            }),
            landlock: None,
            seccomp: None,
        },
    }
}

/// profiles/strict.yaml
fn strict() -> ProfileFile {
    ProfileFile {
        name: Some("strict".into()),
        description: Some("every layer on, no network, read-only system directories, one writable work directory (/work)".into()),
        extends: Some(Spanned { value: "base".into(), loc: Loc { line: 3u64, column: 10u64 } }),
        command: None,
        layers: Sections {
            namespaces: Some(namespaces::Section {
                mode: Some(Requirement::Required),
                user: None,
                pid: None,
                net: Some(true),
                ipc: None,
                uts: None,
                cgroup: None,
                time: None,
                hostname: None,
                uid: None,
                gid: None,
                host_uid: None,
                host_gid: None,
            }),
            filesystem: Some(filesystem::Section {
                mode: Some(Requirement::Required),
                read_only_root: None,
                proc: None,
                dev: None,
                mounts: vec![
                    filesystem::MountEntry {
                        ro_bind: None,
                        bind: None,
                        dev_bind: None,
                        tmpfs: Some(Spanned {
                            value: "/work".into(),
                            loc: Loc { line: 11u64, column: 16u64 },
                        }),
                        dir: None,
                        symlink: None,
                        file: None,
                        mask: None,
                        source: None,
                        to: None,
                        content: None,
                        size: Some(Spanned {
                            value: "256M".into(),
                            loc: Loc { line: 12u64, column: 15u64 },
                        }),
                        perms: Some(Spanned {
                            value: "0777".into(),
                            loc: Loc { line: 13u64, column: 16u64 },
                        }),
                        optional: None,
                    },
                ],
            }),
            cgroups: None,
            capabilities: None,
            rlimits: Some(rlimits::Section {
                mode: Some(Requirement::Required),
                nofile: Some(Spanned {
                    value: "1024".into(),
                    loc: Loc { line: 16u64, column: 13u64 },
                }),
                nproc: None,
                fsize: Some(Spanned {
                    value: "256M".into(),
                    loc: Loc { line: 17u64, column: 12u64 },
                }),
                core: Some(Spanned { value: "0".into(), loc: Loc { line: 18u64, column: 11u64 } }),
                cpu: None,
                address_space: None,
                stack: None,
                memlock: None,
            }),
            process: Some(process::Section {
                mode: Some(Requirement::Required),
                no_new_privs: Some(true),
                new_session: Some(true),
                die_with_parent: Some(true),
                close_fds: None,
                pass_fds: None,
                env: None,
                cwd: Some(Spanned {
                    value: "/work".into(),
                    loc: Loc { line: 24u64, column: 10u64 },
                }),
                timeout: None,
            }),
            landlock: Some(landlock::Section {
                mode: Some(Requirement::Required),
                abi: None,
                allow_missing: None,
                read: vec![
                    Spanned {
                        value: "/usr".into(),
                        loc: Loc { line: 27u64, column: 12u64 },
                    },
                    Spanned {
                        value: "/etc".into(),
                        loc: Loc { line: 27u64, column: 18u64 },
                    },
                    Spanned {
                        value: "/proc".into(),
                        loc: Loc { line: 27u64, column: 24u64 },
                    },
                    Spanned {
                        value: "/dev".into(),
                        loc: Loc { line: 27u64, column: 31u64 },
                    },
                ],
                write: vec![
                    Spanned {
                        value: "/work".into(),
                        loc: Loc { line: 28u64, column: 13u64 },
                    },
                    Spanned {
                        value: "/tmp".into(),
                        loc: Loc { line: 28u64, column: 20u64 },
                    },
                    Spanned {
                        value: "/dev/null".into(),
                        loc: Loc { line: 28u64, column: 26u64 },
                    },
                    Spanned {
                        value: "/dev/zero".into(),
                        loc: Loc { line: 28u64, column: 37u64 },
                    },
                    Spanned {
                        value: "/dev/full".into(),
                        loc: Loc { line: 28u64, column: 48u64 },
                    },
                    Spanned {
                        value: "/dev/pts".into(),
                        loc: Loc { line: 28u64, column: 59u64 },
                    },
                    Spanned {
                        value: "/dev/shm".into(),
                        loc: Loc { line: 28u64, column: 69u64 },
                    },
                ],
                exec: vec![
                    Spanned {
                        value: "/usr".into(),
                        loc: Loc { line: 29u64, column: 12u64 },
                    },
                ],
                rules: vec![
                    landlock::RuleSection {
                        path: Spanned {
                            value: "/".into(),
                            loc: Loc { line: 31u64, column: 15u64 },
                        },
                        access: vec![
                            Spanned {
                                value: "read-dir".into(),
                                loc: Loc { line: 32u64, column: 18u64 },
                            },
                        ],
                        optional: false,
                    },
                    landlock::RuleSection {
                        path: Spanned {
                            value: "/bin".into(),
                            loc: Loc { line: 33u64, column: 15u64 },
                        },
                        access: vec![
                            Spanned {
                                value: "exec".into(),
                                loc: Loc { line: 34u64, column: 18u64 },
                            },
                        ],
                        optional: true,
                    },
                    landlock::RuleSection {
                        path: Spanned {
                            value: "/lib".into(),
                            loc: Loc { line: 36u64, column: 15u64 },
                        },
                        access: vec![
                            Spanned {
                                value: "exec".into(),
                                loc: Loc { line: 37u64, column: 18u64 },
                            },
                        ],
                        optional: true,
                    },
                    landlock::RuleSection {
                        path: Spanned {
                            value: "/lib64".into(),
                            loc: Loc { line: 39u64, column: 15u64 },
                        },
                        access: vec![
                            Spanned {
                                value: "exec".into(),
                                loc: Loc { line: 40u64, column: 18u64 },
                            },
                        ],
                        optional: true,
                    },
                ],
                net: Some(landlock::NetSection { bind: vec![], connect: vec![] }),
                scope: Some(vec![
                    Spanned {
                        value: "abstract-unix-socket".into(),
                        loc: Loc { line: 45u64, column: 13u64 },
                    },
                    Spanned {
                        value: "signal".into(),
                        loc: Loc { line: 45u64, column: 35u64 },
                    },
                ]),
            }),
            seccomp: None,
        },
    }
}

/// profiles/seccomp-default.yaml
fn seccomp_default() -> ProfileFile {
    ProfileFile {
        name: Some("seccomp-default".into()),
        description: Some("A syscall allow-list for ordinary programs (shells, coreutils, python3): systemd's @system-service group plus syscalls newer than that list. Anything else fails with EPERM. The always-blocked edges (io_uring, namespaces, mount API, keyrings, bpf, ptrace, modules, TIOCSTI, x32) stay blocked whatever this list says.".into()),
        extends: None,
        command: None,
        layers: Sections {
            namespaces: None,
            filesystem: None,
            cgroups: None,
            capabilities: None,
            rlimits: None,
            process: None,
            landlock: None,
            seccomp: Some(seccomp::Section {
                mode: Some(Requirement::Required),
                default_action: Some(Spanned {
                    value: "errno EPERM".into(),
                    loc: Loc { line: 10u64, column: 21u64 },
                }),
                allow: vec![
                    Spanned {
                        value: "@system-service".into(),
                        loc: Loc { line: 12u64, column: 9u64 },
                    },
                    Spanned {
                        value: "cachestat".into(),
                        loc: Loc { line: 14u64, column: 9u64 },
                    },
                    Spanned {
                        value: "mseal".into(),
                        loc: Loc { line: 15u64, column: 9u64 },
                    },
                    Spanned {
                        value: "getxattrat".into(),
                        loc: Loc { line: 16u64, column: 9u64 },
                    },
                    Spanned {
                        value: "listxattrat".into(),
                        loc: Loc { line: 17u64, column: 9u64 },
                    },
                    Spanned {
                        value: "setxattrat".into(),
                        loc: Loc { line: 18u64, column: 9u64 },
                    },
                    Spanned {
                        value: "removexattrat".into(),
                        loc: Loc { line: 19u64, column: 9u64 },
                    },
                    Spanned {
                        value: "file_getattr".into(),
                        loc: Loc { line: 20u64, column: 9u64 },
                    },
                    Spanned {
                        value: "file_setattr".into(),
                        loc: Loc { line: 21u64, column: 9u64 },
                    },
                    Spanned {
                        value: "lsm_get_self_attr".into(),
                        loc: Loc { line: 22u64, column: 9u64 },
                    },
                    Spanned {
                        value: "lsm_list_modules".into(),
                        loc: Loc { line: 23u64, column: 9u64 },
                    },
                ],
                allow_if: vec![],
                deny: vec![],
                allow_dangerous: vec![],
                import: None,
            }),
        },
    }
}
