"""Giving up every privilege in a child before the program runs.

A worker running as root (containers, CI, these machines) would otherwise hand its uid 0 and its
capabilities to every program: Landlock and seccomp only close the paths someone thought of, while
a process without privilege cannot change what it does not own, signal or limit another user's
processes, make device nodes, or mount anything. So the child, first of all:

1. drops every capability from its bounding set and clears the ambient set;
2. locks its securebits (no root privilege through exec, no keeping capabilities over a uid
   change, no ambient raise) (these two once, in the zygote every child is cloned from);
3. clears its supplementary groups and becomes a uid and gid of its own (one per slot, so
   programs running side by side are different users too), which clears its permitted and
   effective sets; then clears the inheritable set;
4. checks that all five sets are empty (the program never runs otherwise).

A worker that is not root cannot switch users: its children keep the worker's uid, with no
capabilities and `no_new_privs` (see docs/verification.md for what such a host gets).

Stdlib only: this module is imported by the fork server.
"""

from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1
PR_CAPBSET_READ = 23
PR_GET_SECUREBITS = 27
PR_CAP_AMBIENT_IS_SET = 1
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3  # locked with the fixup on: a uid change clears capabilities
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7
SECUREBITS = (
    SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)
_CAPABILITY_VERSION_3 = 0x20080522

DEFAULT_UID = 1_500_000_000
"""First uid (and gid) of the sandbox's users: slot N runs as DEFAULT_UID + N. Far above the ids
that distributions hand out, so they own nothing on the machine (CURATION_SANDBOX_UID moves it)."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 63


def check_ids(uid_base: int, slots: int) -> None:
    """Refuse ids that are root's or that this user namespace cannot represent."""
    if uid_base <= 0:
        raise ValueError(f"the sandbox uid must not be 0 (CURATION_SANDBOX_UID={uid_base})")
    for path in ("/proc/self/uid_map", "/proc/self/gid_map"):
        try:
            with open(path) as handle:
                ranges = [tuple(int(x) for x in line.split()) for line in handle if line.strip()]
        except OSError:
            continue
        last = uid_base + slots - 1
        if not any(inside <= uid_base and last < inside + count for inside, _outside, count in ranges):
            raise ValueError(
                f"sandbox ids {uid_base}-{last} are not mapped in this user namespace ({path}); "
                "set CURATION_SANDBOX_UID to a range it maps"
            )


class Dropper:
    """Prepared in the fork server (symbols resolved, structures allocated); `drop` runs in a child."""

    def __init__(self, privileged: bool) -> None:
        self.privileged = privileged
        self.last_cap = last_capability()
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._capset = libc.capset
        self._capget = libc.capget
        self._header = _CapHeader(_CAPABILITY_VERSION_3, 0)
        self._empty = (_CapData * 2)()
        self._seen = (_CapData * 2)()

    def _call(self, name: str, *args: int) -> None:
        if self._prctl(*args) != 0:
            raise OSError(ctypes.get_errno(), name)

    def prepare_zygote(self) -> None:
        """Steps 1 and 2, once, in the zygote: every child inherits an empty bounding set and locked
        securebits. The zygote keeps its effective capabilities (it needs CAP_SETUID and
        CAP_SETGID for step 3 in each child), but can never pass one on through exec."""
        if self.privileged:
            for cap in range(self.last_cap + 1):
                self._call("prctl(PR_CAPBSET_DROP)", PR_CAPBSET_DROP, cap, 0, 0, 0)
            self._call("prctl(PR_SET_SECUREBITS)", PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0)
        self._call("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        # Checked, not assumed (a kernel that ignored a drop would leave every child a capability):
        # no program runs unless both sets are empty and the bits locked.
        for cap in range(self.last_cap + 1):
            # 1 is "set"; -1 (EINVAL) is a capability this kernel does not have, so none to hold
            if self._prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0:
                raise PermissionError(f"capability {cap} remains in the ambient set")
            if self.privileged and self._prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0:
                raise PermissionError(f"capability {cap} remains in the bounding set")
        if self.privileged and self._prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) & SECUREBITS != SECUREBITS:
            raise PermissionError("the securebits did not lock")

    def drop(self, uid: int, gid: int) -> None:
        """Steps 3 and 4, in each child."""
        if self.privileged:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if self._capset(ctypes.byref(self._header), self._empty) != 0:
            raise OSError(ctypes.get_errno(), "capset")
        if self._capget(ctypes.byref(self._header), self._seen) != 0:
            raise OSError(ctypes.get_errno(), "capget")
        if any(d.effective or d.permitted or d.inheritable for d in self._seen):
            raise PermissionError("capabilities remain after dropping them")
        if self.privileged and (0 in os.getresuid() or 0 in os.getresgid() or os.getgroups()):
            raise PermissionError("root ids remain after dropping them")

    def die_with(self, parent: int) -> None:
        """SIGKILL when the server dies (set after the uid change, which clears it)."""
        self._call("prctl(PR_SET_PDEATHSIG)", PR_SET_PDEATHSIG, 9, 0, 0, 0)
        if os.getppid() != parent:  # it died before the line above
            os._exit(0)
