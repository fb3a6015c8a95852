"""The seccomp allow list for sandboxed programs: classic BPF assembled here, loaded in each child.

Everything not listed is denied. The list is what a confined CPython computation needs: reading
files Landlock allows, memory, time, its own signal handlers and timers, polling its own
descriptors. Nothing that reaches other processes (sending any signal, even to itself;
`prlimit64` or `sched_*` on another pid; tracing), changes file metadata (chmod, chown, utime,
xattrs, ioctls that set flags), creates memory outside the address space limit (memfd, SysV and
POSIX shared memory), makes sockets, links or device nodes, mounts, or opens files by handle.
Calls that are allowed only on the calling process check their arguments: `prlimit64` only reads
the caller's own limits (pid 0, no new limit); `sched_getaffinity`, `sched_getparam`,
`sched_getscheduler`, `getpriority`, `getpgid` and `getsid` only ask about the caller (pid 0);
`fcntl` and `ioctl` only take the commands listed below. Nothing sets a priority, a scheduler or
a limit at all (setpriority, sched_set*, setrlimit are denied).

The architecture is checked first: a call made through another entry point (i386 `int 0x80`, the
x32 ABI's high syscall numbers) kills the process, since the numbers below mean other things there.
Denied calls fail with EPERM, which a program sees as a PermissionError.

Built once in the fork server; a child loads it with one prctl. Stdlib only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server
if TYPE_CHECKING:
    from collections.abc import Sequence

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_EPERM = 0x00050000 | errno.EPERM

# Classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian here)
_NR, _ARCH = 0, 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


def _arg_high(index: int) -> int:
    return 20 + 8 * index


AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# Allowed without conditions (names as in the kernel's syscall tables).
ALLOWED = (
    # descriptors the program holds or opens where Landlock lets it
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek", "close",
    "close_range", "open", "openat", "dup", "dup2", "dup3", "pipe", "pipe2", "fsync", "fdatasync",
    "ftruncate", "flock", "poll", "ppoll", "select", "pselect6",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    # looking at files (Landlock decides what can be opened; these only read metadata)
    "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
    "getdents", "getdents64", "getcwd", "chdir", "fchdir", "readlink", "readlinkat", "statfs", "fstatfs",
    # creating and removing files: only beneath the private directory (Landlock), capped by its size
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "creat",
    "truncate", "umask",
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
    # signals to itself, and waiting
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend",
    "sigaltstack", "pause", "restart_syscall", "nanosleep", "clock_nanosleep", "getitimer", "setitimer", "alarm",
    # time, identity, randomness
    "clock_gettime", "clock_getres", "gettimeofday", "time", "times", "getrusage", "sysinfo", "uname",
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getgroups", "getpgrp", "getcpu", "getrandom", "getrlimit",
    "sched_yield", "sched_get_priority_max", "sched_get_priority_min",
    # threads' bookkeeping that CPython and glibc do on their own (no new threads: clone is denied)
    "futex", "set_robust_list", "set_tid_address", "rseq",
    "exit", "exit_group",
)  # fmt: skip

FCNTL_COMMANDS = (
    0,  # F_DUPFD
    1,  # F_GETFD
    2,  # F_SETFD
    3,  # F_GETFL
    4,  # F_SETFL (O_ASYNC is harmless: F_SETOWN and F_SETSIG are not allowed)
    5, 6, 7,  # F_GETLK, F_SETLK, F_SETLKW
    36, 37, 38,  # F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW
    1030,  # F_DUPFD_CLOEXEC
    1032,  # F_GETPIPE_SZ
)  # fmt: skip
IOCTL_COMMANDS = (
    0x5401,  # TCGETS (isatty)
    0x5413,  # TIOCGWINSZ
    0x541B,  # FIONREAD
    0x5421,  # FIONBIO
    0x5450,  # FIONCLEX
    0x5451,  # FIOCLEX
)

# Numbers per architecture: x86_64 (arch/x86/entry/syscalls/syscall_64.tbl) and aarch64 (the
# generic table, include/uapi/asm-generic/unistd.h, which lacks the old path-based calls).
_X86_64 = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6, "poll": 7, "lseek": 8,
    "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14,
    "rt_sigreturn": 15, "ioctl": 16, "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21,
    "pipe": 22, "select": 23, "sched_yield": 24, "mremap": 25, "msync": 26, "mincore": 27, "madvise": 28,
    "dup": 32, "dup2": 33, "pause": 34, "nanosleep": 35, "getitimer": 36, "alarm": 37, "setitimer": 38,
    "getpid": 39, "exit": 60, "uname": 63, "fcntl": 72, "flock": 73, "fsync": 74, "fdatasync": 75,
    "truncate": 76, "ftruncate": 77, "getdents": 78, "getcwd": 79, "chdir": 80, "fchdir": 81, "rename": 82,
    "mkdir": 83, "rmdir": 84, "creat": 85, "unlink": 87, "readlink": 89, "umask": 95, "gettimeofday": 96,
    "getrlimit": 97, "getrusage": 98, "sysinfo": 99, "times": 100, "getuid": 102, "getgid": 104,
    "geteuid": 107, "getegid": 108, "getppid": 110, "getpgrp": 111, "getgroups": 115, "getresuid": 118,
    "getresgid": 120, "getpgid": 121, "getsid": 124, "rt_sigpending": 127, "rt_sigtimedwait": 128,
    "rt_sigsuspend": 130, "sigaltstack": 131, "statfs": 137, "fstatfs": 138, "getpriority": 140,
    "sched_getparam": 143, "sched_getscheduler": 145, "sched_get_priority_max": 146,
    "sched_get_priority_min": 147, "gettid": 186, "time": 201, "futex": 202, "sched_getaffinity": 204,
    "epoll_create": 213, "getdents64": 217, "set_tid_address": 218, "restart_syscall": 219,
    "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230, "exit_group": 231, "epoll_wait": 232,
    "epoll_ctl": 233, "mkdirat": 258, "newfstatat": 262, "unlinkat": 263, "renameat": 264, "readlinkat": 267,
    "faccessat": 269, "pselect6": 270, "ppoll": 271, "set_robust_list": 273, "epoll_pwait": 281,
    "epoll_create1": 291, "dup3": 292, "pipe2": 293, "preadv": 295, "pwritev": 296, "prlimit64": 302,
    "getcpu": 309, "renameat2": 316, "getrandom": 318, "statx": 332, "rseq": 334, "close_range": 436,
    "faccessat2": 439, "openat": 257,
}  # fmt: skip
_AARCH64 = {
    "getcwd": 17, "epoll_create1": 20, "epoll_ctl": 21, "epoll_pwait": 22, "dup": 23, "dup3": 24, "fcntl": 25,
    "ioctl": 29, "flock": 32, "mkdirat": 34, "unlinkat": 35, "renameat": 38, "statfs": 43, "fstatfs": 44,
    "truncate": 45, "ftruncate": 46, "faccessat": 48, "chdir": 49, "fchdir": 50, "openat": 56, "close": 57,
    "pipe2": 59, "getdents64": 61, "lseek": 62, "read": 63, "write": 64, "readv": 65, "writev": 66,
    "pread64": 67, "pwrite64": 68, "preadv": 69, "pwritev": 70, "pselect6": 72, "ppoll": 73,
    "readlinkat": 78, "newfstatat": 79, "fstat": 80, "fsync": 82, "fdatasync": 83, "exit": 93,
    "exit_group": 94, "set_tid_address": 96, "futex": 98, "set_robust_list": 99, "nanosleep": 101,
    "getitimer": 102, "setitimer": 103, "clock_gettime": 113, "clock_getres": 114, "clock_nanosleep": 115,
    "sched_getparam": 121, "sched_getscheduler": 120, "sched_getaffinity": 123, "sched_yield": 124,
    "sched_get_priority_max": 125, "sched_get_priority_min": 126, "restart_syscall": 128,
    "sigaltstack": 132, "rt_sigsuspend": 133, "rt_sigaction": 134, "rt_sigprocmask": 135,
    "rt_sigpending": 136, "rt_sigtimedwait": 137, "rt_sigreturn": 139, "getpriority": 141, "getresuid": 148,
    "getresgid": 150, "times": 153, "getpgid": 155, "getsid": 156, "getgroups": 158, "uname": 160,
    "getrlimit": 163, "getrusage": 165, "umask": 166, "getcpu": 168, "gettimeofday": 169, "getpid": 172,
    "getppid": 173, "getuid": 174, "geteuid": 175, "getgid": 176, "getegid": 177, "gettid": 178,
    "sysinfo": 179, "brk": 214, "munmap": 215, "mremap": 216, "mmap": 222, "mprotect": 226, "msync": 227,
    "mincore": 232, "madvise": 233, "prlimit64": 261, "renameat2": 276, "getrandom": 278, "statx": 291,
    "rseq": 293, "close_range": 436, "faccessat2": 439,
}  # fmt: skip
_TABLES = {"x86_64": (AUDIT_ARCH_X86_64, _X86_64), "aarch64": (AUDIT_ARCH_AARCH64, _AARCH64)}


class SeccompUnavailable(RuntimeError):
    pass


class _Program:
    """Classic BPF with symbolic jump targets, resolved by `assemble`."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def load(self, offset: int) -> None:
        self.code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, value: int, true: int | str, false: int | str) -> None:
        self.code.append((op, true, false, value))

    def ret(self, action: int) -> None:
        self.code.append((_RET_K, 0, 0, action))

    def assemble(self) -> bytes:
        out = []
        for index, (op, true, false, k) in enumerate(self.code):
            jt, jf = (self._offset(index, target) for target in (true, false))
            out.append(struct.pack("=HBBI", op, jt, jf, k))
        return b"".join(out)

    def _offset(self, index: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        distance = self.labels[target] - index - 1
        if not 0 <= distance <= 255:
            raise SeccompUnavailable(f"seccomp program too long for a jump to {target}")
        return distance


def _machine() -> str:
    return os.uname().machine


def build(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as BPF instructions ready for prctl."""
    machine = machine or _machine()
    if machine not in _TABLES:
        raise SeccompUnavailable(f"no seccomp allow list for {machine} (only x86_64 and aarch64)")
    arch, numbers = _TABLES[machine]
    p = _Program()
    p.load(_ARCH)
    p.jump(_JEQ_K, arch, 1, 0)
    p.ret(RET_KILL_PROCESS)
    p.load(_NR)
    if machine == "x86_64":
        p.jump(_JGE_K, X32_SYSCALL_BIT, "kill", 0)
    for name in ALLOWED:
        if name in numbers:
            p.jump(_JEQ_K, numbers[name], "allow", 0)

    def only_values(syscall: str, arg: int, values: Sequence[int]) -> None:
        """`syscall` allowed when the low 32 bits of `arg` (an int in the kernel) are in `values`."""
        end = f"end-{syscall}"
        p.jump(_JEQ_K, numbers[syscall], 0, end)
        p.load(_arg_low(arg))
        for value in values:
            p.jump(_JEQ_K, value, "allow", 0)
        p.ret(RET_EPERM)
        p.label(end)
        p.load(_NR)

    def only_zero(syscall: str, *args: int, full: Sequence[int] = ()) -> None:
        """`syscall` allowed when each of `args` (32-bit ints) and `full` (64-bit pointers) is 0."""
        end = f"end-{syscall}"
        p.jump(_JEQ_K, numbers[syscall], 0, end)
        for arg in args:
            p.load(_arg_low(arg))
            p.jump(_JEQ_K, 0, 0, "deny")
        for arg in full:
            p.load(_arg_low(arg))
            p.jump(_JEQ_K, 0, 0, "deny")
            p.load(_arg_high(arg))
            p.jump(_JEQ_K, 0, 0, "deny")
        p.ret(RET_ALLOW)
        p.label(end)
        p.load(_NR)

    only_values("fcntl", 1, FCNTL_COMMANDS)
    only_values("ioctl", 1, IOCTL_COMMANDS)
    only_zero("prlimit64", 0, full=(2,))  # pid 0 (itself), new_limit NULL: reading only
    only_zero("sched_getaffinity", 0)
    only_zero("sched_getparam", 0)
    only_zero("sched_getscheduler", 0)
    only_zero("getpriority", 1)  # who == 0: itself (its process, group or user)
    # Asked about another pid, these say whether it exists and whose group it is in: a program
    # could find its siblings and the server by probing the numbers next to its own.
    only_zero("getpgid", 0)
    only_zero("getsid", 0)
    p.label("deny")
    p.ret(RET_EPERM)
    p.label("allow")
    p.ret(RET_ALLOW)
    p.label("kill")
    p.ret(RET_KILL_PROCESS)
    return p.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """The assembled allow list, ready to load in a child process."""

    def __init__(self) -> None:
        self.bpf = build()
        self._buffer = ctypes.create_string_buffer(self.bpf, len(self.bpf))
        self._program = _SockFprog(len(self.bpf) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))
        self._program_ref = ctypes.byref(self._program)
        # Resolved here, in the server: looking a symbol up in each forked child costs ~0.2 ms.
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]

    def set_no_new_privs(self) -> None:
        """Required before Landlock or seccomp can confine an unprivileged process."""
        if self._prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")

    def load(self) -> None:
        """Confine the calling process (irreversibly); call set_no_new_privs first."""
        if self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._program_ref, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
