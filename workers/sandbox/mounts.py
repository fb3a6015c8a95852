"""The fork server's private mount namespace (when it runs as root).

- Every mount the server makes is in a namespace of its own, with propagation off: nothing is
  visible on the host, and everything goes away with the server (and its children), however it ends.
- Scratch space is tmpfs mounted `nodev,nosuid,noexec`: one small filesystem per slot, with a size
  and inode cap, so a program can neither open a device node nor hold more than its share.
- The interpreter and its packages stay importable for an unprivileged child even where they live
  under a directory that only root may enter (pyenv under /root): each such directory is covered,
  in this namespace only, by a tmpfs that holds nothing but the entries leading to them (bind
  mounts of the originals). Whatever else that directory holds (a home directory's keys) is then
  not even visible.

Stdlib only: this module is imported by the fork server.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REMOUNT = 32
MS_REC, MS_PRIVATE = 1 << 14, 1 << 18
_OPEN_TREE, _MOVE_MOUNT = 428, 429  # the same number on every architecture
OPEN_TREE_CLONE, AT_RECURSIVE = 1, 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 4
SCRATCH_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        raise OSError(ctypes.get_errno(), what)
    return result


def private_namespace() -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount(/, MS_REC|MS_PRIVATE)")


def mount_tmpfs(path: str, *, size: int, inodes: int, mode: int = 0o711, remount: bool = False) -> None:
    options = f"size={max(size, 4096)},nr_inodes={inodes},mode={mode:o},uid=0,gid=0".encode()
    flags = SCRATCH_FLAGS | (MS_REMOUNT if remount else 0)
    _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, options), f"mount tmpfs on {path}")


def _enterable(path: str) -> bool:
    return bool(os.stat(path).st_mode & 0o001)


def expose(paths: list[str]) -> list[str]:
    """Make every directory above `paths` enterable by other users (in this namespace only).
    Returns the directories that were covered."""
    covered: list[str] = []
    while True:
        blocked: dict[str, set[str]] = {}
        for path in paths:
            parts = [p for p in os.path.realpath(path).split("/") if p]
            current = "/"
            for name in parts:
                if not _enterable(current):
                    blocked.setdefault(current, set()).add(name)
                    break  # deeper ones are looked at once this one is covered
                current = os.path.join(current, name)
        if not blocked:
            return covered
        for directory, names in sorted(blocked.items()):
            _cover(directory, sorted(names))
            covered.append(directory)


def _cover(directory: str, keep: list[str]) -> None:
    trees = {}
    try:
        for name in keep:
            source = os.path.join(directory, name)
            trees[name] = (
                _check(
                    int(
                        _libc.syscall(_OPEN_TREE, -100, source.encode(), OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC)
                    ),
                    f"open_tree({source})",
                ),
                os.path.isdir(source),
            )
        _check(_libc.mount(b"tmpfs", directory.encode(), b"tmpfs", SCRATCH_FLAGS, b"size=64k,mode=755"), "mount")
        for name, (tree, is_dir) in trees.items():
            target = os.path.join(directory, name)
            if is_dir:
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            _check(
                int(_libc.syscall(_MOVE_MOUNT, tree, b"", -100, target.encode(), MOVE_MOUNT_F_EMPTY_PATH)),
                f"move_mount({target})",
            )
    finally:
        for tree, _ in trees.values():
            os.close(tree)
