"""The fork server: a lean, single-threaded process that runs one confined child per program.

Started by `Sandbox` (client.py) with a clean environment. It imports only the standard library
and the modules named in `preload`, prepares every rule once (the mount namespace and scratch
tmpfs when root, one Landlock ruleset per slot, the seccomp program), forks the zygote, then
serves batches: each request is a list of programs and their limits; it keeps up to `in_flight`
children running, kills any child that has not exited when its deadline passes on the server's
clock (its whole process group), classifies how each one ended, and answers with one result per
program. Children are cloned by the zygote with the server as their parent, so the server reaps
them and wakes on each exit (SIGCHLD through a wakeup descriptor).

A child cannot reach the server: it runs as another user with no capabilities, the server's
descriptors are closed in it, and the seccomp allow list refuses signals, `prlimit64` and
scheduling calls on other processes. Nothing a child does can raise out of the server: any
report, any exit, any tree of files becomes that program's result.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import importlib
import json
import os
import re
import selectors
import signal
import struct
import sys
import time

from curation.db.text import storable
from workers.sandbox import landlock, mounts, privilege, protocol, seccomp
from workers.sandbox.child import (
    CONFINED,
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    SAFE_ENV,
    Context,
    fix_limits,
    run_child,
)

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server
if TYPE_CHECKING:  # every module the server loads makes each fork and exit dearer
    from typing import Any

PR_SET_CHILD_SUBREAPER = 36
CLONE_PARENT = 0x00008000
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}
_SIGNAL_STATUS: dict[int, tuple[str, str]] = {
    int(signal.SIGXCPU): ("timeout", "CPUTimeLimitExceeded"),
    int(signal.SIGXFSZ): ("killed", "FileSizeLimitExceeded"),
}
MAX_REPORT_BYTES = 256 * 1024
"""The most a child may write to its result channel (its own report is at most about 60 KB);
more is a `killed` result, and the child is killed as soon as it passes it."""
SCRATCH_INODES = 4096
"""Files and directories one program may create in its private directory (tmpfs nr_inodes)."""


def signal_name(number: int) -> str:
    """A name for any signal number, real-time ones included (`signal.Signals` knows only some)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        low, high = signal.SIGRTMIN, signal.SIGRTMAX
        if low <= number <= high:
            return f"SIGRTMIN+{number - low}"
        return f"signal {number}"


_LOOP = re.compile(r"^([ \t]*)(?:for|while)\b", re.MULTILINE)


def expected_cost(code: str) -> int:
    """A cheap guess at how long a program runs: its loops, nested loops counting more.

    Programs start longest-guess first (the LPT rule for short makespans): a program that loops
    until it is killed then spends its seconds beside the short ones instead of after them.
    """
    return sum(1 + len(indent.expandtabs(4)) // 4 for indent in _LOOP.findall(code))


LONG_RUNNING = 0.1
"""Seconds after which a child is an outlier (a loop, heavy search) and yields the CPU to the
short programs queued behind it: it keeps its whole wall-clock allowance, at the lowest priority."""


SETUP_SECONDS = 10.0
"""How long a child may take to confine itself before its program starts (our code, not the
program's: on a loaded machine it waits for the CPU). The program's own clock starts when the
server reads the child's CONFINED byte, written just before the program runs."""


EXIT_GRACE_SECONDS = 0.5
"""How long past its deadline a child whose complete report is in may take to exit (see run)."""


class _Running:
    __slots__ = (
        "confined", "deadline", "demoted", "graced", "index", "overflow", "payload", "slot", "started", "timed_out",
        "wall", "workdir",
    )  # fmt: skip

    def __init__(self, index: int, slot: int, workdir: str, wall: float, spawned: float) -> None:
        self.index, self.slot, self.workdir, self.wall = index, slot, workdir, wall
        # Until the child says it is confined, the clock covers setup; see _read_report.
        self.deadline, self.started = spawned + SETUP_SECONDS + wall, spawned
        self.timed_out, self.demoted, self.confined, self.graced = False, False, False, False
        self.payload = bytearray()
        self.overflow = False

    def reported(self, output_cap: int) -> bool:
        """Whether a well-formed report has arrived (it decides nothing alone: see run)."""
        body = bytes(self.payload[len(CONFINED) :])
        return self.confined and not self.overflow and bool(body) and _program_report(body, output_cap) is not None

    def program_started(self, now: float) -> None:
        """The CONFINED byte arrived: the program runs from now, for its whole allowance. Written by
        our code before the program's first instruction, so no program can move it."""
        self.confined = True
        self.started, self.deadline = now, now + self.wall


class LandlockMissing(RuntimeError):
    pass


class NoSlotsLeft(RuntimeError):
    pass


def _scratch_dir() -> str:
    # Private directories on tmpfs: making and emptying them on the root filesystem of these
    # machines cost more than running a typical program.
    for root in ("/dev/shm", os.environ.get("TMPDIR", "/tmp"), "/tmp"):
        if os.path.isdir(root) and os.access(root, os.W_OK):
            path = os.path.join(root, f"curation-sandbox-{os.getpid()}")
            os.mkdir(path, 0o711)
            return path
    raise OSError("no writable directory for sandbox scratch space")


def remove_tree(path: str) -> bool:
    """Remove a directory and everything beneath it, however deep, holding one descriptor at a
    time and never recursing (a program can build a tree deeper than any stack or PATH_MAX).
    False if anything is left."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    # Per level: the subdirectories still to remove. Names only, so memory grows with what the
    # program made (capped by the inode limit of its tmpfs), descriptors do not.
    levels: list[list[str]] = []
    try:
        entering = True
        while True:
            if entering:
                subdirs = []
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.name)
                        else:
                            os.unlink(entry.name, dir_fd=fd)
                levels.append(subdirs)
            if levels[-1]:
                child = os.open(levels[-1][-1], flags, dir_fd=fd)
                os.close(fd)
                fd, entering = child, True
                continue
            levels.pop()
            if not levels:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd, entering = parent, False
            os.rmdir(levels[-1].pop(), dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


class Server:
    def __init__(self, config: dict[str, Any], client_fds: tuple[int, ...]) -> None:
        self.in_flight = max(1, int(config["in_flight"]))
        for module in config.get("preload", []):
            importlib.import_module(module)
        os.environ.clear()  # no secrets: children inherit this environment and nothing else
        os.environ.update(SAFE_ENV)
        abi = landlock.abi_version()
        if not abi:
            raise LandlockMissing("this kernel has no Landlock (Linux 5.13+ with landlock in the LSM list)")
        self.privileged = os.geteuid() == 0
        self.uid_base = int(config.get("uid_base") or privilege.DEFAULT_UID) if self.privileged else os.getuid()
        if self.privileged:
            privilege.check_ids(self.uid_base, self.in_flight)
        read_paths = list(dict.fromkeys([*config.get("read_paths", []), *landlock.default_read_paths()]))
        self.covered: list[str] = []
        self.scratch_bytes = -1
        if self.privileged:
            # Every mount from here on is in the server's own namespace and dies with it. The
            # scratch space is made inside a tmpfs covering /dev/shm there: nothing of it is ever
            # on the host, however the server ends.
            mounts.private_namespace()
            root = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
            mounts.mount_tmpfs(root, size=1 << 20, inodes=self.in_flight + 16)
            self.base_dir = os.path.join(root, "curation-sandbox")
            os.mkdir(self.base_dir, 0o711)
            self.covered = mounts.expose(read_paths)
        else:
            self.base_dir = _scratch_dir()
        self.slot_dirs = [os.path.join(self.base_dir, str(slot)) for slot in range(self.in_flight)]
        for path in self.slot_dirs:
            os.mkdir(path, 0o711)
        self._size_scratch(8 << 20)
        self.landlock = landlock.Policy(read_paths, abi)
        # Without root there is no tmpfs to cap a program's files, and files on the host's /dev/shm
        # would be memory outside its limit: such a worker's programs get no writable directory.
        self.rulesets = [self.landlock.ruleset(path, writable=self.privileged) for path in self.slot_dirs]
        self.seccomp = seccomp.Filter()
        self.free_slots = list(range(self.in_flight))
        self.retired: dict[int, str] = {}
        self.programs_started = 0
        self.children: dict[int, _Running] = {}
        self.by_slot: dict[int, _Running] = {}
        # Children the zygote is cloning, in the order asked (it answers in that order), and wait
        # statuses of children that ended before their pid arrived.
        self.spawning: collections.deque[_Running] = collections.deque()
        self.early_exits: dict[int, int] = {}
        result_pipes = [os.pipe() for _ in range(self.in_flight)]
        self.result_fds = [r for r, _ in result_pipes]
        devnull = os.open(os.devnull, os.O_RDWR)
        context = Context(
            devnull=devnull,
            dropper=privilege.Dropper(self.privileged),
            result_fds=[w for _, w in result_pipes],
            rulesets=self.rulesets,
            seccomp=self.seccomp,
            server_pid=os.getpid(),
            uid_base=self.uid_base,
        )
        request_r, self.zygote_requests = os.pipe()
        self.zygote_replies, reply_w = os.pipe()
        gc.collect()
        gc.freeze()  # forked children then do not copy pages just to update GC bookkeeping
        # The zygote: forked now, while this process holds no program, result or pid of any batch,
        # and every child is forked from it. What a child can find in its own memory is this state.
        self.zygote = os.fork()
        if self.zygote == 0:
            for fd in (*client_fds, self.zygote_requests, self.zygote_replies, *self.result_fds):
                os.close(fd)
            _zygote(context, request_r, reply_w)
        for fd in (request_r, reply_w, devnull, *context.result_fds):
            os.close(fd)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wakeup_r, selectors.EVENT_READ)
        for slot, fd in enumerate(self.result_fds):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, slot)
        os.set_blocking(self.zygote_replies, False)
        self.selector.register(self.zygote_replies, selectors.EVENT_READ, -1)

    def _size_scratch(self, size: int) -> None:
        """Each slot's tmpfs holds at most `size` bytes (remounted when a batch asks for another size)."""
        if size == self.scratch_bytes or not self.privileged:
            self.scratch_bytes = size
            return
        for path in self.slot_dirs:
            mounts.mount_tmpfs(path, size=size, inodes=SCRATCH_INODES, remount=self.scratch_bytes >= 0)
        self.scratch_bytes = size

    def describe(self) -> dict[str, Any]:
        return {
            "landlock_abi": self.landlock.abi,
            "pid": os.getpid(),
            "zygote": self.zygote,
            "scratch": self.base_dir,
            "privileged": self.privileged,
            "uid_base": self.uid_base,
            "covered": self.covered,
        }

    def run_batch(self, programs: list[str], limits: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        results: list[dict[str, Any] | None] = [None] * len(programs)
        retired_before = len(self.retired)
        if not self.privileged:
            limits = {**limits, "max_file_bytes": 0}
        self._size_scratch(limits["max_file_bytes"])
        limits_json = json.dumps(limits).encode()
        # Popped from the end: the programs guessed to run longest come last in the list.
        pending = sorted(range(len(programs)), key=lambda i: (expected_cost(programs[i]), -i))
        output_cap = limits["max_output_bytes"]
        while pending or self.children or self.spawning:
            while pending and self.free_slots:
                index = pending.pop()
                self._spawn(index, programs[index], limits, limits_json)
            if not self.children and not self.spawning:
                raise NoSlotsLeft("every slot of this sandbox server is retired")
            now = time.monotonic()
            wake_at = now + 60.0
            for pid, running in list(self.children.items()):
                if running.timed_out:
                    continue
                if now >= running.deadline:
                    # The server's clock decides: a child that has not exited by its deadline timed out.
                    if self._reap_one(pid, results, limits["max_output_bytes"]):
                        continue
                    if not running.graced and running.reported(output_cap):
                        # Its report is in and it is on its way out, but a demoted child on a busy
                        # machine may wait for the CPU to exit: it gets EXIT_GRACE_SECONDS, back at
                        # normal priority. A program that reports and goes on running is still a timeout.
                        running.graced = True
                        running.deadline = now + EXIT_GRACE_SECONDS
                        with contextlib.suppress(ProcessLookupError, PermissionError):  # not root: it stays niced
                            os.setpriority(os.PRIO_PROCESS, pid, 0)
                        wake_at = min(wake_at, running.deadline)
                        continue
                    running.timed_out = True
                    self._kill(pid)
                    continue
                if running.confined and not running.demoted:
                    if now - running.started >= LONG_RUNNING:
                        running.demoted = True
                        with contextlib.suppress(ProcessLookupError):
                            os.setpriority(os.PRIO_PROCESS, pid, 19)
                    else:
                        wake_at = min(wake_at, running.started + LONG_RUNNING)
                wake_at = min(wake_at, running.deadline)
            self._reap(results, output_cap)
            if pending and self.free_slots:
                continue
            if not self.children and not self.spawning:
                continue
            for key, _ in self.selector.select(max(0.0, wake_at - time.monotonic())):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wakeup_r, 4096):
                            pass
                elif key.data == -1:
                    self._spawned(results, output_cap)
                else:
                    self._read_report(key.data)
        lost = {"status": "killed", "error_type": protocol.LOST, "error_message": "no result was recorded"}
        notices = list(self.retired.values())[retired_before:]
        return [r if r is not None else lost for r in results], notices

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _spawn(self, index: int, code: str, limits: dict[str, Any], limits_json: bytes) -> None:
        slot = self.free_slots.pop()
        workdir = self.slot_dirs[slot]
        if limits["max_file_bytes"] > 0:  # a fresh directory, never used before, for this program only
            self.programs_started += 1
            workdir = os.path.join(workdir, str(self.programs_started))
            os.mkdir(workdir, 0o700)
            if self.privileged:
                os.chown(workdir, self.uid_base + slot, self.uid_base + slot)
        directory = workdir.encode()
        source = code.encode("utf-8", "surrogatepass")
        header = struct.pack("=IQII", slot, self.scratch_bytes, len(limits_json), len(directory))
        size = len(header) + len(limits_json) + len(directory) + len(source)
        started = time.monotonic()
        _write_all(self.zygote_requests, b"".join((struct.pack("=I", size), header, limits_json, directory, source)))
        running = _Running(index, slot, workdir, limits["wall_seconds"], started)
        self.spawning.append(running)  # its pid comes back from the zygote (see _spawned)
        self.by_slot[slot] = running

    def _spawned(self, results: list[dict[str, Any] | None], output_cap: int) -> None:
        """Pids from the zygote, in the order the programs were sent."""
        try:
            replies = os.read(self.zygote_replies, 4 * max(1, len(self.spawning)))
        except BlockingIOError:
            return
        if not replies:
            raise RuntimeError("the sandbox zygote died")
        while len(replies) % 4:  # a reply is written whole (4 bytes, atomic on a pipe); be sure
            replies += os.read(self.zygote_replies, 4 - len(replies) % 4)
        for (pid,) in struct.iter_unpack("=i", replies):
            running = self.spawning.popleft()
            if pid <= 0:
                raise OSError(-pid, "the sandbox zygote could not start a child")
            self.children[pid] = running
            if running.overflow:
                self._kill(pid)
            if pid in self.early_exits:
                self._finish(pid, self.early_exits.pop(pid), results, output_cap)

    def _read_report(self, slot: int) -> None:
        running = self.by_slot.get(slot)
        fd = self.result_fds[slot]
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                if running is None or running.overflow:
                    continue  # nobody's (a dead child's leftovers) or past the cap: read and dropped
                running.payload += chunk
                if not running.confined and running.payload.startswith(CONFINED):
                    running.program_started(time.monotonic())
                if len(running.payload) > MAX_REPORT_BYTES:
                    running.overflow = True
                    del running.payload[MAX_REPORT_BYTES:]
                    for pid, other in self.children.items():
                        if other is running:
                            self._kill(pid)
                            break  # not found: its pid is on its way, and _spawned kills it

    def _reap(self, results: list[dict[str, Any] | None], output_cap: int) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._finish(pid, wait_status, results, output_cap)

    def _reap_one(self, pid: int, results: list[dict[str, Any] | None], output_cap: int) -> bool:
        try:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if done == 0:
            return False
        self._finish(pid, wait_status, results, output_cap)
        return True

    def _finish(self, pid: int, wait_status: int, results: list[dict[str, Any] | None], output_cap: int) -> None:
        if pid == self.zygote:
            raise RuntimeError(f"the sandbox zygote ended (wait status {wait_status})")
        running = self.children.pop(pid, None)
        if running is None:  # a child whose pid the zygote has not told yet
            if self.spawning:
                self.early_exits[pid] = wait_status
            return
        elapsed_ms = (time.monotonic() - running.started) * 1000
        self._read_report(running.slot)  # all it wrote is in the pipe now
        del self.by_slot[running.slot]
        try:
            result = _classify(wait_status, bytes(running.payload), running, elapsed_ms, output_cap)
        except Exception as error:
            result = _killed("InvalidResult", f"the result could not be read ({type(error).__name__})", elapsed_ms)
        results[running.index] = result
        if running.workdir != self.slot_dirs[running.slot] and not remove_tree(running.workdir):
            # Fail closed: what the program left could meet the next program of this slot.
            self.retired[running.slot] = (
                f"sandbox slot {running.slot} retired: its private directory could not be removed"
            )
            return
        self.free_slots.append(running.slot)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.zygote, signal.SIGKILL)
        for pid in list(self.children):
            self._kill(pid)
        if not self.privileged:  # otherwise everything is in this namespace's tmpfs
            remove_tree(self.base_dir)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_into(fd: int, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        count = os.readv(fd, [view[got:]])
        if count == 0:
            return False
        got += count
    return True


def _zygote(context: Context, requests: int, replies: int) -> None:
    """Read one program at a time, clone a child for it, say its pid. Never returns.

    The child is cloned with CLONE_PARENT, so the server is its parent: the server reaps it, and
    the zygote keeps nothing about it. The request is read into one buffer, zeroed after each clone:
    no later child finds an earlier program's source in the memory it inherits."""
    try:
        signal.set_wakeup_fd(-1)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(privilege.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != context.server_pid:
            os._exit(0)
        context.dropper.prepare_zygote()
        fix_limits()
        # PyDLL: the GIL stays held across the call, so the child wakes up holding it.
        clone = ctypes.PyDLL(None, use_errno=True).syscall
        clone.restype = ctypes.c_long
        clone.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        number = _SYS_CLONE[os.uname().machine]
        after_fork = ctypes.pythonapi.PyOS_AfterFork_Child
        head, reply = bytearray(4), bytearray(4)
        buffer = bytearray(1 << 16)
        while True:
            if not _read_into(requests, memoryview(head)):
                os._exit(0)
            (size,) = struct.unpack_from("=I", head)
            if size > len(buffer):
                ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))
                buffer = bytearray(size)
            view = memoryview(buffer)[:size]
            if not _read_into(requests, view):
                os._exit(0)
            pid = clone(number, CLONE_PARENT | signal.SIGCHLD, None, None, None)
            if pid == 0:
                after_fork()
                run_child(context, view)
            error = ctypes.get_errno()
            view.release()
            ctypes.memset((ctypes.c_char * size).from_buffer(buffer), 0, size)
            struct.pack_into("=i", reply, 0, pid if pid > 0 else -error)
            os.write(replies, reply)
    finally:
        os._exit(0)


def _killed(error_type: str, message: str, elapsed_ms: float) -> dict[str, Any]:
    return {"status": "killed", "error_type": error_type, "error_message": message, "duration_ms": elapsed_ms}


_PROGRAM_STATUSES = frozenset(("ok", "error", "syntax", "memory"))
_TEXT_CAPS = {"value": MAX_VALUE_CHARS, "value_type": 100, "error_type": 200, "error_message": MAX_MESSAGE_CHARS}


def _parse(body: bytes) -> Any:
    """JSON from a child, or None: bounded in size by the reader, in depth here (a report is one
    flat object; nesting is refused before the parser could recurse on it)."""
    depth = 0
    in_string = escaped = False
    for byte in body:  # only a report the size cap allowed through; cheap next to the program
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > 1:
                return None
        elif byte in (0x7D, 0x5D):
            depth -= 1
    try:
        return json.loads(body)
    except (ValueError, RecursionError, MemoryError):
        return None


def _program_report(body: bytes, output_cap: int) -> dict[str, Any] | None:
    """The child's report, checked field by field: the program shares the child's process and can
    write to the result pipe itself, so the report is untrusted input. None if it is malformed."""
    report = _parse(body)
    if not isinstance(report, dict) or report.get("status") not in _PROGRAM_STATUSES:
        return None
    for key, value in report.items():
        if key in _TEXT_CAPS:
            if value is not None and not isinstance(value, str):
                return None
            if value is not None:
                report[key] = storable(value[: _TEXT_CAPS[key]])
        elif key in ("stdout", "stderr"):
            if not isinstance(value, str):
                return None
            report[key] = storable(value[:output_cap])
        elif key == "output_truncated":
            if not isinstance(value, bool):
                return None
        elif key != "status":
            return None
    return report


def _setup_failure(payload: bytes, wait_status: int, elapsed_ms: float) -> dict[str, Any]:
    reported = _parse(payload)
    message = reported.get("error_message") if isinstance(reported, dict) else None
    if not isinstance(message, str) or not message:
        message = f"the child ended (wait status {wait_status}) before it was confined"
    return _killed(protocol.SETUP_FAILED, storable(message[:MAX_MESSAGE_CHARS]), elapsed_ms)


def _classify(
    wait_status: int, payload: bytes, running: _Running, elapsed_ms: float, output_cap: int
) -> dict[str, Any]:
    """How a program ended, from what the server saw: its exit (or the deadline it passed on the
    server's clock) first, its own report last. Durations are the server's."""
    if running.timed_out:
        # Also a child still being confined when its setup allowance ran out (SETUP_SECONDS: a
        # machine so loaded that confinement waited that long for the CPU): no sandbox failure.
        return {
            "status": "timeout",
            "error_type": "TimeoutError",
            "error_message": f"wall-clock limit reached after {elapsed_ms:.0f} ms",
            "duration_ms": elapsed_ms,
        }
    if not payload.startswith(CONFINED):  # the program never ran
        return _setup_failure(payload, wait_status, elapsed_ms)
    if running.overflow:
        return _killed("InvalidResult", f"wrote more than {MAX_REPORT_BYTES} bytes to the result channel", elapsed_ms)
    if os.WIFSIGNALED(wait_status):
        name = signal_name(os.WTERMSIG(wait_status))
        status, error_type = _SIGNAL_STATUS.get(os.WTERMSIG(wait_status), ("killed", name))
        return {
            "status": status,
            "error_type": error_type,
            "error_message": f"terminated by {name}",
            "duration_ms": elapsed_ms,
        }
    body = payload[len(CONFINED) :]
    reported = _program_report(body, output_cap) if body else None
    if body and reported is None:
        return _killed("InvalidResult", "the program wrote to the sandbox's result channel", elapsed_ms)
    if reported is None:
        code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else wait_status
        return {
            "status": "error",
            "error_type": "Exit",
            "error_message": f"exited with status {code} before reporting",
            "duration_ms": elapsed_ms,
        }
    if not os.WIFEXITED(wait_status) or os.WEXITSTATUS(wait_status) != 0:
        # A report, then an exit of the program's own choosing before the sandbox's: not the sandbox's report.
        return _killed("InvalidResult", "the program ended the child after writing a report", elapsed_ms)
    reported["duration_ms"] = elapsed_ms
    return reported


def main() -> None:
    request_fd, response_fd = int(sys.argv[1]), int(sys.argv[2])
    config = json.loads(sys.argv[3])
    try:
        server = Server(config, (request_fd, response_fd))
    except LandlockMissing as error:
        protocol.send(response_fd, {"error": str(error)})
        return
    try:
        protocol.send(response_fd, {"ready": server.describe()})
        while True:
            try:
                request = protocol.receive(request_fd)
            except protocol.ProtocolError:
                return  # the client went away
            results, notices = server.run_batch(request["programs"], request["limits"])
            protocol.send(response_fd, {"id": request["id"], "results": results, "notices": notices})
    finally:
        server.close()


if __name__ == "__main__":
    main()
