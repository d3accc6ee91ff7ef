//! Classic-BPF code generation for a seccomp policy.
//!
//! Layout (seccomp_data: `nr` at 0, `arch` at 4, `args[i]` at 16 + 8 i, little endian):
//! 1. `arch != AUDIT_ARCH_<native>` → KILL_PROCESS (i386 via `int 0x80`, foreign binaries);
//! 2. on x86_64, `nr >= 0x40000000` (the x32 ABI bit) → KILL_PROCESS;
//! 3. a binary search on `nr` over ranges of equal outcome, so any call is reached in about
//!    log2(ranges) jumps instead of a linear chain;
//! 4. leaves: either one `RET` (no argument loaded, so the kernel's constant-action bitmap,
//!    `seccomp_cache_prepare` in kernel/seccomp.c, answers ALLOW for it without running the
//!    program) or a short list of argument checks tried in order, then a fallback `RET`.
//!
//! seccompiler 0.5 emits one linear chain of per-syscall comparisons and has a single match
//! action per filter, so the program is assembled here; seccompiler supplies the instruction
//! type and the action encoding.

#[cfg(test)]
use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction};

use super::tables::Arch;

/// BPF_LD | BPF_W | BPF_ABS (BPF_LD and BPF_W are 0)
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// The x32 ABI marker in the syscall number (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on a classic-BPF seccomp program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// How an argument is compared. All comparisons are unsigned, as in the kernel's BPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`
    MaskedEq {
        mask: u64,
    },
    /// `(arg & value) != 0`
    AnySet,
}

/// Which bits of the argument take part in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits only: for arguments the kernel reads as `int`/`unsigned int`
    /// (ioctl's cmd, socket's family), where the high bits are ignored by the call and so must
    /// be ignored by the check too (Flatpak CVE-2019-10063).
    Low32,
    Full64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgCheck {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub width: Width,
}

/// All checks hold → `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub checks: Vec<ArgCheck>,
    pub action: SeccompAction,
}

/// What one syscall number does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    Const(SeccompAction),
    Rules {
        rules: Vec<Rule>,
        fallback: SeccompAction,
    },
}

impl Leaf {
    /// Drop rules that can never be reached and fold a leaf without checks into a constant.
    pub fn simplify(self) -> Leaf {
        match self {
            Leaf::Const(a) => Leaf::Const(a),
            Leaf::Rules { rules, fallback } => {
                let mut kept = Vec::new();
                let mut fallback = fallback;
                for rule in rules {
                    if rule.checks.is_empty() {
                        fallback = rule.action;
                        break;
                    }
                    kept.push(rule);
                }
                while kept.last().is_some_and(|r| r.action == fallback) {
                    kept.pop();
                }
                if kept.is_empty() {
                    Leaf::Const(fallback)
                } else {
                    Leaf::Rules {
                        rules: kept,
                        fallback,
                    }
                }
            }
        }
    }
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: &SeccompAction) -> sock_filter {
    stmt(BPF_RET_K, u32::from(action.clone()))
}

/// A jump offset that is patched to "the end of the current rule" once its length is known.
const FAIL: u8 = 0xff;

/// One check; on success falls through, on failure jumps with offset `FAIL` (patched later).
fn emit_check(check: &ArgCheck, out: &mut Vec<sock_filter>) {
    let lo_off = OFF_ARGS + 8 * u32::from(check.index);
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((check.value >> 32) as u32, check.value as u32);
    let ld_lo = stmt(BPF_LD_W_ABS, lo_off);
    let ld_hi = stmt(BPF_LD_W_ABS, hi_off);
    match (check.width, check.op) {
        (Width::Low32, op) => {
            out.push(ld_lo);
            match op {
                CmpOp::Eq => out.push(jump(BPF_JEQ_K, vlo, 0, FAIL)),
                CmpOp::Ne => out.push(jump(BPF_JEQ_K, vlo, FAIL, 0)),
                CmpOp::Gt => out.push(jump(BPF_JGT_K, vlo, 0, FAIL)),
                CmpOp::Ge => out.push(jump(BPF_JGE_K, vlo, 0, FAIL)),
                CmpOp::Lt => out.push(jump(BPF_JGE_K, vlo, FAIL, 0)),
                CmpOp::Le => out.push(jump(BPF_JGT_K, vlo, FAIL, 0)),
                CmpOp::MaskedEq { mask } => {
                    out.push(stmt(BPF_ALU_AND_K, mask as u32));
                    out.push(jump(BPF_JEQ_K, vlo, 0, FAIL));
                }
                CmpOp::AnySet => out.push(jump(BPF_JSET_K, vlo, 0, FAIL)),
            }
        }
        (Width::Full64, CmpOp::Eq) => {
            out.extend([ld_hi, jump(BPF_JEQ_K, vhi, 0, FAIL)]);
            out.extend([ld_lo, jump(BPF_JEQ_K, vlo, 0, FAIL)]);
        }
        (Width::Full64, CmpOp::Ne) => {
            // high words differ → holds (skip the low-word test)
            out.extend([ld_hi, jump(BPF_JEQ_K, vhi, 0, 2)]);
            out.extend([ld_lo, jump(BPF_JEQ_K, vlo, FAIL, 0)]);
        }
        (Width::Full64, CmpOp::MaskedEq { mask }) => {
            let (mhi, mlo) = ((mask >> 32) as u32, mask as u32);
            out.extend([
                ld_hi,
                stmt(BPF_ALU_AND_K, mhi),
                jump(BPF_JEQ_K, vhi, 0, FAIL),
            ]);
            out.extend([
                ld_lo,
                stmt(BPF_ALU_AND_K, mlo),
                jump(BPF_JEQ_K, vlo, 0, FAIL),
            ]);
        }
        (Width::Full64, CmpOp::AnySet) => {
            let (mhi, mlo) = ((check.value >> 32) as u32, check.value as u32);
            out.extend([ld_hi, jump(BPF_JSET_K, mhi, 2, 0)]);
            out.extend([ld_lo, jump(BPF_JSET_K, mlo, 0, FAIL)]);
        }
        (Width::Full64, op @ (CmpOp::Gt | CmpOp::Ge)) => {
            // hi > vhi → holds; hi < vhi → fails; equal → decide on the low word
            let last = if op == CmpOp::Gt {
                BPF_JGT_K
            } else {
                BPF_JGE_K
            };
            out.extend([
                ld_hi,
                jump(BPF_JGT_K, vhi, 3, 0),
                jump(BPF_JEQ_K, vhi, 0, FAIL),
            ]);
            out.extend([ld_lo, jump(last, vlo, 0, FAIL)]);
        }
        (Width::Full64, op @ (CmpOp::Lt | CmpOp::Le)) => {
            // hi < vhi → holds; hi > vhi → fails; equal → decide on the low word
            let last = if op == CmpOp::Lt {
                BPF_JGE_K
            } else {
                BPF_JGT_K
            };
            out.extend([
                ld_hi,
                jump(BPF_JGE_K, vhi, 0, 3),
                jump(BPF_JEQ_K, vhi, 0, FAIL),
            ]);
            out.extend([ld_lo, jump(last, vlo, FAIL, 0)]);
        }
    }
}

fn emit_leaf(leaf: &Leaf, out: &mut Vec<sock_filter>) -> Result<(), String> {
    match leaf {
        Leaf::Const(action) => out.push(ret(action)),
        Leaf::Rules { rules, fallback } => {
            for rule in rules {
                let mut body = Vec::new();
                for check in &rule.checks {
                    emit_check(check, &mut body);
                }
                body.push(ret(&rule.action));
                let len = body.len();
                for (i, insn) in body.iter_mut().enumerate() {
                    let to_end = u8::try_from(len - i - 1)
                        .map_err(|_| format!("argument rule too long ({len} instructions)"))?;
                    if insn.code != BPF_RET_K && insn.code != BPF_LD_W_ABS {
                        if insn.jt == FAIL {
                            insn.jt = to_end;
                        }
                        if insn.jf == FAIL {
                            insn.jf = to_end;
                        }
                    }
                }
                out.extend(body);
            }
            out.push(ret(fallback));
        }
    }
    Ok(())
}

/// A run of syscall numbers `[lo, next.lo)` with one outcome.
struct Segment<'a> {
    lo: u32,
    leaf: &'a Leaf,
}

/// A run of numbers from `lo` on with `leaf` opens a segment, unless it continues an equal
/// constant one.
fn push_run<'a>(segs: &mut Vec<Segment<'a>>, lo: u32, leaf: &'a Leaf) {
    let same = segs
        .last()
        .is_some_and(|s| matches!((s.leaf, leaf), (Leaf::Const(a), Leaf::Const(b)) if a == b));
    if !same {
        segs.push(Segment { lo, leaf });
    }
}

/// Emits in place: the jump over the left half is written first and patched once the left
/// half's length is known (a long jump is inserted in the rare case it exceeds 255).
fn emit_search(segs: &[Segment<'_>], out: &mut Vec<sock_filter>) -> Result<(), String> {
    if segs.len() == 1 {
        return emit_leaf(segs[0].leaf, out);
    }
    let mid = segs.len() / 2;
    let at = out.len();
    // A holds nr here: leaves reload it only after they are entered.
    out.push(jump(BPF_JGE_K, segs[mid].lo, 0, 0));
    emit_search(&segs[..mid], out)?;
    let left = out.len() - at - 1;
    match u8::try_from(left) {
        Ok(skip) => out[at].jt = skip,
        Err(_) => {
            out[at].jf = 1;
            out.insert(at + 1, stmt(BPF_JA, left as u32));
        }
    }
    emit_search(&segs[mid..], out)
}

/// Assemble the whole program. `leaves` holds every number with an outcome other than
/// `unlisted` (the action for numbers below `table_max`) and `beyond` (numbers above it),
/// in ascending order of number (a `&BTreeMap<u32, Leaf>` is such a sequence).
pub fn assemble<'a>(
    arch: Arch,
    leaves: impl IntoIterator<Item = (&'a u32, &'a Leaf)>,
    unlisted: &SeccompAction,
    beyond: &SeccompAction,
    table_max: u32,
) -> Result<BpfProgram, String> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, arch.audit_arch(), 1, 0),
        ret(&SeccompAction::KillProcess),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    if arch == Arch::X86_64 {
        prog.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(ret(&SeccompAction::KillProcess));
    }

    let unlisted_leaf = Leaf::Const(unlisted.clone());
    let beyond_leaf = Leaf::Const(beyond.clone());
    let mut segs: Vec<Segment<'_>> = Vec::new();
    // Numbers in `[from, to)` without a leaf: `unlisted` up to the table's end, `beyond` after.
    let gap = |segs: &mut Vec<_>, from: u32, to: u32| {
        if from <= table_max && from < to {
            push_run(segs, from, &unlisted_leaf);
        }
        let beyond_from = from.max(table_max.saturating_add(1));
        if beyond_from < to {
            push_run(segs, beyond_from, &beyond_leaf);
        }
    };
    let mut next = 0u32;
    for (&nr, leaf) in leaves {
        debug_assert!(nr >= next, "leaves out of order at {nr}");
        gap(&mut segs, next, nr);
        push_run(&mut segs, nr, leaf);
        next = nr + 1;
    }
    // Through the number after the last one listed, so the top segment is `beyond`.
    let top = table_max.max(next.saturating_sub(1));
    gap(&mut segs, next, top + 2);
    emit_search(&segs, &mut prog)?;
    if prog.len() > MAX_INSNS {
        return Err(format!(
            "filter has {} instructions, more than the kernel's limit of {MAX_INSNS}",
            prog.len()
        ));
    }
    Ok(prog)
}

#[cfg(test)]
/// Run a program on one `seccomp_data`, as the kernel would. Returns the action value and
/// whether an argument was read (a path that reads none is what the kernel caches).
pub fn evaluate(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> (u32, bool) {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    let mut read_args = false;
    loop {
        let insn = &prog[pc];
        pc += 1;
        let k = insn.k;
        match insn.code {
            BPF_LD_W_ABS => {
                let off = k as usize;
                read_args |= off >= OFF_ARGS as usize;
                acc = u32::from_le_bytes(data[off..off + 4].try_into().unwrap_or([0; 4]));
            }
            BPF_ALU_AND_K => acc &= k,
            BPF_JA => pc += k as usize,
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K | BPF_JSET_K => {
                let taken = match insn.code {
                    BPF_JEQ_K => acc == k,
                    BPF_JGT_K => acc > k,
                    BPF_JGE_K => acc >= k,
                    _ => acc & k != 0,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            BPF_RET_K => return (k, read_args),
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(op: CmpOp, value: u64, width: Width) -> Leaf {
        Leaf::Rules {
            rules: vec![Rule {
                checks: vec![ArgCheck {
                    index: 1,
                    op,
                    value,
                    width,
                }],
                action: SeccompAction::Allow,
            }],
            fallback: SeccompAction::Errno(1),
        }
    }

    fn holds(leaf: Leaf, arg: u64) -> bool {
        let leaves = BTreeMap::from([(16u32, leaf)]);
        let prog = assemble(
            Arch::X86_64,
            &leaves,
            &SeccompAction::Errno(1),
            &SeccompAction::Errno(38),
            400,
        )
        .unwrap();
        let (ret, _) = evaluate(&prog, Arch::X86_64.audit_arch(), 16, [0, arg, 0, 0, 0, 0]);
        ret == u32::from(SeccompAction::Allow)
    }

    #[test]
    fn comparisons_match_rust_semantics() {
        let samples = [
            0u64,
            1,
            5,
            0x5412,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_5412,
            0x2_0000_0005,
            u64::MAX,
        ];
        for &v in &samples {
            for &a in &samples {
                let lo = |x: u64| x & 0xffff_ffff;
                let cases: [(CmpOp, Width, bool); 14] = [
                    (CmpOp::Eq, Width::Full64, a == v),
                    (CmpOp::Ne, Width::Full64, a != v),
                    (CmpOp::Lt, Width::Full64, a < v),
                    (CmpOp::Le, Width::Full64, a <= v),
                    (CmpOp::Gt, Width::Full64, a > v),
                    (CmpOp::Ge, Width::Full64, a >= v),
                    (CmpOp::AnySet, Width::Full64, a & v != 0),
                    (
                        CmpOp::MaskedEq {
                            mask: 0xff00_0000_ffff,
                        },
                        Width::Full64,
                        a & 0xff00_0000_ffff == v,
                    ),
                    (CmpOp::Eq, Width::Low32, lo(a) == lo(v)),
                    (CmpOp::Ne, Width::Low32, lo(a) != lo(v)),
                    (CmpOp::Lt, Width::Low32, lo(a) < lo(v)),
                    (CmpOp::Le, Width::Low32, lo(a) <= lo(v)),
                    (CmpOp::Gt, Width::Low32, lo(a) > lo(v)),
                    (CmpOp::Ge, Width::Low32, lo(a) >= lo(v)),
                ];
                for (op, width, want) in cases {
                    assert_eq!(
                        holds(check(op, v, width), a),
                        want,
                        "{op:?} {width:?} arg={a:#x} value={v:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn prologue_kills_foreign_arch_and_x32() {
        let prog = assemble(
            Arch::X86_64,
            &BTreeMap::new(),
            &SeccompAction::Allow,
            &SeccompAction::Allow,
            400,
        )
        .unwrap();
        let kill = u32::from(SeccompAction::KillProcess);
        let i386 = 3 | 0x4000_0000;
        assert_eq!(evaluate(&prog, i386, 39, [0; 6]).0, kill);
        assert_eq!(
            evaluate(
                &prog,
                Arch::X86_64.audit_arch(),
                39 | X32_SYSCALL_BIT,
                [0; 6]
            )
            .0,
            kill
        );
        assert_eq!(
            evaluate(&prog, Arch::X86_64.audit_arch(), 39, [0; 6]).0,
            u32::from(SeccompAction::Allow)
        );
    }

    #[test]
    fn long_left_subtrees_use_long_jumps() {
        // Alternate actions on every number so that no two neighbours merge: a deep tree
        // whose left halves exceed the 255-instruction reach of a conditional jump.
        let leaves: BTreeMap<u32, Leaf> = (0..1000u32)
            .map(|nr| (nr, Leaf::Const(SeccompAction::Errno(nr % 7 + 1))))
            .collect();
        let prog = assemble(
            Arch::X86_64,
            &leaves,
            &SeccompAction::Allow,
            &SeccompAction::Errno(38),
            999,
        )
        .unwrap();
        for nr in [0u32, 1, 255, 256, 511, 512, 998, 999] {
            let (ret, _) = evaluate(&prog, Arch::X86_64.audit_arch(), nr, [0; 6]);
            assert_eq!(ret, u32::from(SeccompAction::Errno(nr % 7 + 1)), "nr {nr}");
        }
        let (ret, _) = evaluate(&prog, Arch::X86_64.audit_arch(), 5000, [0; 6]);
        assert_eq!(ret, u32::from(SeccompAction::Errno(38)));
    }
}
