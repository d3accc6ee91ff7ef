# Raw syscalls from inside the payload, one forked child per probe, printing `name result`
# lines: `ok` (the call succeeded), an errno name (`EPERM`), or `SIG<n>` (the child was killed).
# Arguments are chosen so that, where the call gets past the filter, the kernel's own answer
# is harmless and, where possible, not EPERM (NULL pointers, bad flags, fd -1).
# x86_64 syscall numbers. argv[1:]: probe names to run (default: all).
import ctypes, errno, mmap, os, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
HI = 1 << 32


def raw(nr, *args):
    r = libc.syscall(L(nr), *[L(a) for a in args])
    return r, ctypes.get_errno()


def gain_caps():
    # An unprivileged caller can get CAP_SYS_ADMIN over a new user+mount namespace: then a
    # call that checks the capability first reaches its argument checks. Root keeps its real
    # capabilities instead (a new user namespace would take the init-namespace ones away).
    if os.geteuid() != 0:
        raw(272, CLONE_NEWUSER | CLONE_NEWNS)


def clone_flags(flags):
    def probe():
        r, e = raw(56, flags | SIGCHLD, 0, 0, 0, 0)
        if r == 0:
            os._exit(0)  # the child of a clone that got through: leave at once
        if r > 0:
            os.waitpid(r, 0)
        return r, e
    return probe


def i386_getpid():
    # `int 0x80` from a 64-bit process enters the kernel with AUDIT_ARCH_I386.
    code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3")  # mov eax, 20 (getpid); int 0x80; ret
    r = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()
    return (r, 0) if r >= 0 else (-1, -r)


TIOCSTI, TIOCLINUX = 0x5412, 0x541C
x = ctypes.c_char(b"X")
px = ctypes.addressof(x)

PROBES = {
    "io_uring_setup": lambda: raw(425, 1, 0),
    "unshare_newuser": lambda: raw(272, CLONE_NEWUSER),
    "setns": lambda: raw(308, -1, CLONE_NEWNET),
    "clone_newuser": clone_flags(CLONE_NEWUSER),
    "clone_newuser_newnet": clone_flags(CLONE_NEWUSER | CLONE_NEWNET),
    "clone_newuser_hi32": clone_flags(CLONE_NEWUSER | HI),
    "clone_plain": clone_flags(0),
    "clone3": lambda: raw(435, 0, 0),
    "mount": lambda: raw(165, 0, 0, 0, 0, 0),
    "umount2": lambda: raw(166, 0, 0x100),
    "pivot_root": lambda: (gain_caps(), raw(155, 0, 0))[1],
    "chroot": lambda: raw(161, 0),
    "fsopen": lambda: (gain_caps(), raw(430, 0, 0))[1],
    "fsconfig": lambda: raw(431, -1, 0xff, 0, 0, 0),
    "fsmount": lambda: (gain_caps(), raw(432, -1, 0, 0))[1],
    "fspick": lambda: (gain_caps(), raw(433, -1, 0, 0xdead0000))[1],
    "open_tree": lambda: raw(428, -1, 0, 0xdead0000),
    "move_mount": lambda: (gain_caps(), raw(429, -1, 0, -1, 0, 0xdead0000))[1],
    "mount_setattr": lambda: raw(442, -1, 0, 0, 0, 0),
    "keyctl": lambda: raw(250, 9999, 0, 0, 0, 0),
    "add_key": lambda: raw(248, 0, 0, 0, 0, 0),
    "request_key": lambda: raw(249, 0, 0, 0, 0),
    "bpf": lambda: raw(321, 9999, 0, 0),
    "perf_event_open": lambda: raw(298, 0, 0, -1, -1, 0),
    "userfaultfd": lambda: raw(323, 1 | 4),
    "ptrace": lambda: raw(101, 9999, 999999999, 0, 0),
    "process_vm_readv": lambda: raw(310, os.getpid(), 0, 0, 0, 0, 1),
    "kexec_load": lambda: raw(246, 0, 0, 0, 0x1000),
    "kexec_file_load": lambda: raw(320, -1, -1, 0, 0, 0xdead0000),
    "init_module": lambda: raw(175, 0, 0, 0),
    "finit_module": lambda: raw(313, -1, 0, 0),
    "delete_module": lambda: raw(176, 0, 0),
    "open_by_handle_at": lambda: raw(304, -1, 0, 0),
    "name_to_handle_at": lambda: raw(303, -100, 0, 0, 0, 0xdead0000),
    "personality_query": lambda: raw(135, 0xFFFFFFFF),
    "personality_bsd": lambda: raw(135, 0x0006),
    "personality_read_implies_exec": lambda: raw(135, 0x0400000),
    "socket_vsock": lambda: raw(41, 40, 1, 0),
    "socket_vsock_hi32": lambda: raw(41, 40 | HI, 1, 0),
    "socket_unix": lambda: raw(41, 1, 1, 0),
    "ioctl_tiocsti": lambda: raw(16, 0, TIOCSTI, px),
    "ioctl_tiocsti_hi32": lambda: raw(16, 0, TIOCSTI | HI, px),
    "ioctl_tioclinux": lambda: raw(16, 0, TIOCLINUX, px),
    "x32_getpid": lambda: raw(39 | 0x40000000),
    "i386_getpid": i386_getpid,
    # Not edges: calls the containers import decides on.
    "move_pages": lambda: raw(279, 0, 0, 0, 0, 0, 0xdead),
    "vmsplice": lambda: raw(278, -1, 0, 0, 0),
    "getppid": lambda: raw(110),
    "socket_netlink_audit": lambda: raw(41, 16, 3, 9),
    "getpid": lambda: raw(39),
}

for name in sys.argv[1:] or PROBES:
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        r, e = PROBES[name]()
        os.write(wr, (b"ok" if r >= 0 else errno.errorcode.get(e, str(e)).encode()))
        os._exit(0)
    os.close(wr)
    out = os.read(rd, 64).decode()
    os.close(rd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        out = "SIG%d" % os.WTERMSIG(status)
    print(name, out, flush=True)
