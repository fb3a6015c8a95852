"""Landlock (Linux 5.13+): what a sandboxed program may touch on the filesystem and network.

Reads are allowed beneath the standard library, installed packages and system library
directories; writes only beneath the program's private directory; TCP binds and connects nowhere
(ABI 4+); signals and abstract Unix sockets only within the sandbox (ABI 6+). Landlock needs no
privileges and binds root too.

The fork server builds one complete ruleset per private directory, once; a child then restricts
itself with a single system call.

Stdlib only: this module is imported by the fork server.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server

if TYPE_CHECKING:
    from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
READ_ONLY = EXECUTE | READ_FILE | READ_DIR

_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is unavailable or disabled."""
    result = _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return int(result) if result > 0 else 0


def default_read_paths(exclude: Iterable[str] = ()) -> list[str]:
    """The standard library, installed packages and system library directories: what an import
    that was not preloaded needs, from a virtualenv (its site-packages and the base interpreter's
    standard library) as well as from a system interpreter (dist-packages). Of the rest of the
    import path only package directories (site-packages, dist-packages) count, never `exclude`: the
    path also holds a script's own directory, and an editable install puts the project's checkout
    (and any .env in it) there."""
    import sysconfig  # only at start-up

    candidates = []
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)):
        paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix, "installed_base": prefix})
        candidates += [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    candidates += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    candidates += ["/usr", "/lib", "/lib64"]
    skip = {os.path.realpath(p) for p in exclude}
    seen: list[str] = []
    for path in candidates:
        if path and os.path.isdir(path) and (real := os.path.realpath(path)) not in seen and real not in skip:
            seen.append(real)
    return seen


class Policy:
    """Rulesets built in the fork server: `ruleset(private_dir)` once per directory, then
    `restrict(ruleset_fd)` in each child."""

    def __init__(self, read_paths: Iterable[str], abi: int) -> None:
        if abi < 1:
            raise RuntimeError("Landlock is not available on this kernel")
        self.abi = abi
        self.fs_rights = _FS_RIGHTS_BY_ABI[max(v for v in _FS_RIGHTS_BY_ABI if v <= abi)]
        self.read_paths = list(read_paths)

    def ruleset(self, private_dir: str, *, writable: bool = True) -> int:
        """writable=False: the private directory can be listed and nothing more."""
        net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if self.abi >= 4 else 0
        scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if self.abi >= 6 else 0
        if self.abi >= 6:
            attr = struct.pack("=QQQ", self.fs_rights, net, scoped)
        elif self.abi >= 4:
            attr = struct.pack("=QQ", self.fs_rights, net)
        else:
            attr = struct.pack("=Q", self.fs_rights)
        ruleset = int(_syscall(_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)))
        if ruleset < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
        os.set_inheritable(ruleset, True)
        for path in self.read_paths:
            self._allow(ruleset, path, READ_ONLY & self.fs_rights)
        self._allow(ruleset, private_dir, self.fs_rights if writable else READ_DIR)
        return ruleset

    @staticmethod
    def _allow(ruleset: int, path: str, rights: int) -> None:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = struct.pack("=Qi", rights, fd)  # struct landlock_path_beneath_attr is packed
            if _syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0)):
                raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
        finally:
            os.close(fd)

    @staticmethod
    def restrict(ruleset: int) -> None:
        """Confine the calling process to the ruleset (needs no_new_privs, set by the caller)."""
        if _syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
