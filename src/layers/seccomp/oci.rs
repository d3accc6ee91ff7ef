//! Reading an OCI/Docker seccomp profile (the JSON of runtime-spec `linux.seccomp`, as shipped
//! in /usr/share/containers/seccomp.json or moby's profiles/seccomp/default.json) into neutral
//! rules. Names are resolved later, against the target architecture's table.

use serde::Deserialize;

use super::bpf::CmpOp;
use super::tables::Arch;
use seccompiler::SeccompAction;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Option<Vec<OciSyscall>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciSyscall {
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<OciArg>>,
    #[serde(default)]
    includes: Option<OciFilter>,
    #[serde(default)]
    excludes: Option<OciFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciArg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
}

/// One imported rule: any of `names`, all `checks` hold → `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedRule {
    pub names: Vec<String>,
    pub action: SeccompAction,
    /// (argument index, comparison, value)
    pub checks: Vec<(u8, CmpOp, u64)>,
}

#[derive(Debug, Clone)]
pub struct Imported {
    pub default_action: SeccompAction,
    pub rules: Vec<ImportedRule>,
    /// How many rules were left out (capability-gated, other architectures).
    pub skipped: usize,
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<SeccompAction, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        other => {
            return Err(format!(
                "action {other:?} is not supported (use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, \
                 SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP or SCMP_ACT_LOG)"
            ))
        }
    })
}

fn op(arg: &OciArg) -> Result<(CmpOp, u64), String> {
    Ok(match arg.op.as_str() {
        "SCMP_CMP_EQ" => (CmpOp::Eq, arg.value),
        "SCMP_CMP_NE" => (CmpOp::Ne, arg.value),
        "SCMP_CMP_LT" => (CmpOp::Lt, arg.value),
        "SCMP_CMP_LE" => (CmpOp::Le, arg.value),
        "SCMP_CMP_GT" => (CmpOp::Gt, arg.value),
        "SCMP_CMP_GE" => (CmpOp::Ge, arg.value),
        // runtime-spec: `value` is the mask, `valueTwo` the expected result
        "SCMP_CMP_MASKED_EQ" => (CmpOp::MaskedEq { mask: arg.value }, arg.value_two),
        other => return Err(format!("comparison {other:?} is not supported")),
    })
}

/// Parse the JSON text. Rules that need a capability are left out (the payload runs without
/// them); rules that apply only when a capability is absent are kept; rules for other
/// architectures are left out.
pub fn parse(text: &str, arch: Arch) -> Result<Imported, String> {
    let profile: OciProfile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default_action = action(&profile.default_action, None, default_errno)
        .map_err(|e| format!("defaultAction: {e}"))?;
    let mut rules = Vec::new();
    let mut skipped = 0;
    for (i, sc) in profile.syscalls.unwrap_or_default().into_iter().enumerate() {
        let includes = sc.includes.unwrap_or_default();
        let excludes = sc.excludes.unwrap_or_default();
        let needs_caps = includes.caps.as_ref().is_some_and(|c| !c.is_empty());
        let other_arch = includes
            .arches
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == arch.oci_name()))
            || excludes
                .arches
                .as_ref()
                .is_some_and(|a| a.iter().any(|x| x == arch.oci_name()));
        if needs_caps || other_arch {
            skipped += 1;
            continue;
        }
        let names: Vec<String> = sc
            .names
            .unwrap_or_default()
            .into_iter()
            .chain(sc.name)
            .collect();
        let action = action(&sc.action, sc.errno_ret, libc::EPERM as u32)
            .map_err(|e| format!("syscalls[{i}]: {e}"))?;
        let mut checks = Vec::new();
        for arg in sc.args.unwrap_or_default() {
            if arg.index > 5 {
                return Err(format!(
                    "syscalls[{i}]: argument index {} is not 0..5",
                    arg.index
                ));
            }
            let (op, value) = op(&arg).map_err(|e| format!("syscalls[{i}]: {e}"))?;
            checks.push((arg.index, op, value));
        }
        rules.push(ImportedRule {
            names,
            action,
            checks,
        });
    }
    Ok(Imported {
        default_action,
        rules,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masked_eq_and_cap_gates() {
        let text = r#"{
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
              {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
              {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
              {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
               "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
              {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm"]}}
            ]}"#;
        let imported = parse(text, Arch::X86_64).unwrap();
        assert_eq!(imported.default_action, SeccompAction::Errno(38));
        assert_eq!(imported.skipped, 2);
        assert_eq!(imported.rules.len(), 3);
        assert_eq!(
            imported.rules[1].checks,
            vec![(0, CmpOp::MaskedEq { mask: 2114060288 }, 0)]
        );
        assert_eq!(imported.rules[2].action, SeccompAction::Errno(1));
    }

    #[test]
    fn rejects_unknown_actions() {
        let text = r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#;
        assert!(parse(text, Arch::X86_64)
            .unwrap_err()
            .contains("SCMP_ACT_NOTIFY"));
    }
}
