//! `--explain-denials` for seccomp: the payload's filter with each `SECCOMP_RET_ERRNO`
//! action turned into `SECCOMP_RET_USER_NOTIF`, and, in the supervisor, the answer to each
//! notification: the errno the original filter returns, found by running the original
//! program on the same `seccomp_data`. The payload sees exactly what it would without the
//! flag; the supervisor counts what was denied. Kill actions are left as they are (the
//! run's ending names SIGSYS).

use seccompiler::sock_filter;

use crate::sys::seccomp::SeccompData;

use super::tables::Arch;

const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// `BPF_RET | BPF_K`.
const RET_K: u16 = 0x06;

/// The program with every errno action turned into a user notification.
pub fn notifying(program: &[sock_filter]) -> Vec<sock_filter> {
    program
        .iter()
        .map(|i| {
            let k = if i.code == RET_K && i.k & RET_ACTION_FULL == RET_ERRNO {
                RET_USER_NOTIF
            } else {
                i.k
            };
            sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k,
            }
        })
        .collect()
}

/// The errno the original filter returns for this call, or `None` when it returns
/// another action.
pub fn errno_of(program: &[sock_filter], data: &SeccompData) -> Option<i32> {
    let action = eval(program, data);
    (action & RET_ACTION_FULL == RET_ERRNO).then_some((action & RET_DATA) as i32)
}

/// The name of a call as the kernel saw it: the native table's, or its number and the
/// audit architecture for another entry point (i386's `int 0x80`).
pub fn call_name(data: &SeccompData) -> String {
    let native = Arch::NATIVE;
    if data.arch == native.audit_arch() {
        if let Some(name) = u32::try_from(data.nr)
            .ok()
            .and_then(|n| native.table().name(n))
        {
            return name.to_string();
        }
    }
    format!("syscall {} (arch {:#x})", data.nr, data.arch)
}

/// Run a classic BPF program, as the kernel's seccomp does, on `data`. Jumps only go
/// forward, so it ends; an instruction seccomp would have refused at install time (or a
/// jump past the end) ends it with `KILL_PROCESS`, as a broken filter would.
pub fn eval(program: &[sock_filter], data: &SeccompData) -> u32 {
    let words = data_words(data);
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    while let Some(i) = program.get(pc) {
        pc += 1;
        let k = i.k;
        match i.code & 0x07 {
            // LD: word at an offset of seccomp_data, an immediate, scratch memory, length.
            0x00 => {
                a = match i.code & 0xe0 {
                    0x20 if k % 4 == 0 && (k as usize) < 64 => words[k as usize / 4],
                    0x00 => k,
                    0x60 if k < 16 => mem[k as usize],
                    0x80 => 64,
                    _ => return RET_KILL_PROCESS,
                }
            }
            0x01 => {
                x = match i.code & 0xe0 {
                    0x00 => k,
                    0x60 if k < 16 => mem[k as usize],
                    0x80 => 64,
                    _ => return RET_KILL_PROCESS,
                }
            }
            0x02 if k < 16 => mem[k as usize] = a,
            0x03 if k < 16 => mem[k as usize] = x,
            0x04 => {
                let v = if i.code & 0x08 != 0 { x } else { k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 if v != 0 => a / v,
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 if v != 0 => a % v,
                    0xa0 => a ^ v,
                    _ => return RET_KILL_PROCESS,
                }
            }
            0x05 => {
                let v = if i.code & 0x08 != 0 { x } else { k };
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => return RET_KILL_PROCESS,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => {
                return match i.code & 0x18 {
                    0x00 => k,
                    0x10 => a,
                    _ => RET_KILL_PROCESS,
                }
            }
            0x07 => match i.code & 0xf8 {
                0x00 => x = a,
                0x80 => a = x,
                _ => return RET_KILL_PROCESS,
            },
            _ => return RET_KILL_PROCESS,
        }
    }
    RET_KILL_PROCESS
}

/// `seccomp_data` as the 16 native-endian words a filter loads.
fn data_words(d: &SeccompData) -> [u32; 16] {
    let mut w = [0u32; 16];
    w[0] = d.nr as u32;
    w[1] = d.arch;
    let halves = |v: u64| -> [u32; 2] {
        let b = v.to_ne_bytes();
        [
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        ]
    };
    let ip = halves(d.instruction_pointer);
    w[2] = ip[0];
    w[3] = ip[1];
    for (n, arg) in d.args.iter().enumerate() {
        let h = halves(*arg);
        w[4 + 2 * n] = h[0];
        w[5 + 2 * n] = h[1];
    }
    w
}
