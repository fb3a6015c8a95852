"""A seccomp filter for sandboxed programs, compiled once by libseccomp and loaded in each child.

Built in the fork server (libseccomp resolves syscall names for this architecture and emits BPF);
each child loads the ready program with one prctl, which costs microseconds. Denied syscalls fail
with EPERM rather than killing the process, so a program that tries to open a socket gets a
Python exception that is recorded like any other error.

Stdlib only: this module is imported by the fork server.
"""

from __future__ import annotations

import ctypes
import errno
import os

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


# Nothing a word problem needs: networking, new processes or threads, signals to others, tracing,
# namespaces, kernel interfaces that bypass seccomp itself (io_uring) or widen attack surface.
DENIED = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "sendto", "sendmsg", "sendmmsg",
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "setsid", "setpgid", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "mount", "umount2", "unshare", "setns", "pivot_root", "chroot",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "reboot", "kexec_load", "init_module", "finit_module",
    "delete_module", "swapon", "swapoff", "acct", "quotactl",
)  # fmt: skip

# Used only where Landlock is unavailable: without a filesystem policy, no file may be written at all.
FILE_WRITES = (
    "creat", "truncate", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
    "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "lchown", "fchownat",
    "mknod", "mknodat", "utime", "utimes", "utimensat", "futimesat", "openat2",
)  # fmt: skip
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompUnavailable(RuntimeError):
    pass


class Filter:
    """A compiled BPF program, ready to load in a child process."""

    def __init__(self, *, deny_file_writes: bool) -> None:
        self.bpf = _compile(deny_file_writes)
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


def _compile(deny_file_writes: bool) -> bytes:
    # By soname: ctypes.util.find_library would pull subprocess and shutil into the fork server.
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as error:
        raise SeccompUnavailable(f"libseccomp not found ({error}); install libseccomp2") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
    ]  # fmt: skip
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]

    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise SeccompUnavailable("seccomp_init failed")
    deny = _errno_action(errno.EPERM)
    try:

        def rule(syscall: str, *comparisons: _ArgCmp) -> None:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:  # not a syscall on this architecture (e.g. fork on aarch64)
                return
            array = (_ArgCmp * len(comparisons))(*comparisons) if comparisons else None
            result = lib.seccomp_rule_add_array(context, deny, number, len(comparisons), array)
            if result < 0:
                raise SeccompUnavailable(f"seccomp_rule_add({syscall}) failed: {os.strerror(-result)}")

        for syscall in DENIED:
            rule(syscall)
        if deny_file_writes:
            for syscall in FILE_WRITES:
                rule(syscall)
            for flag in _WRITE_FLAGS:  # open/openat with any flag that writes or creates
                rule("open", _ArgCmp(1, SCMP_CMP_MASKED_EQ, flag, flag))
                rule("openat", _ArgCmp(2, SCMP_CMP_MASKED_EQ, flag, flag))
        read_fd, write_fd = os.pipe()
        try:
            result = lib.seccomp_export_bpf(context, write_fd)
            os.close(write_fd)
            write_fd = -1
            if result < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed: {os.strerror(-result)}")
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    finally:
        lib.seccomp_release(context)
