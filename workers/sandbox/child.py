"""Inside one forked child: confine the process, run the program, report its answer, exit.

How a program's answer is found (the conventions of PaD, PAL and Program-of-Thoughts):
1. If the program defines a callable `solution`, it is called with no arguments and its return
   value is the answer (PaD: `def solution(): ... return result`). If it returns None, the last
   line the program printed is the answer (PAL programs that print).
2. Otherwise, if the program sets `ans` at top level, that is the answer (Program-of-Thoughts).
3. Otherwise the last line printed, if any.
The program runs as `__main__`, so `if __name__ == "__main__": print(solution())` works as written.

Stdlib only, and nothing here may raise out of `run_child`: the child always ends in os._exit.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import io
import json
import os
import resource
import struct
import sys

from workers.sandbox import landlock, protocol

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server
if TYPE_CHECKING:  # the fork server never imports typing at run time
    from typing import Any

    from workers.sandbox.privilege import Dropper
    from workers.sandbox.seccomp import Filter


RESULT_FD = 3
_F_SETFL = 4
_fcntl = ctypes.CDLL(None, use_errno=True).fcntl  # resolved once, in the server (ctypes is loaded there)
_fcntl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
CONFINED = b"R"
"""Written to the result pipe once the child is confined and before the program runs. A program
can write anything after it, but nothing before it: a report without the marker can only come
from the sandbox's own setup, which the server then treats as a sandbox failure."""
MAX_VALUE_CHARS = 4_096
MAX_MESSAGE_CHARS = 4_096
_PIPE_SAFE_BYTES = 60_000  # a result must fit the pipe buffer: the server reads it after exit
SAFE_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    # Numerical libraries start thread pools when imported; a child may not start threads.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""The whole environment of the fork server, and so of every program (set once, in the server)."""


class CappedOutput(io.TextIOBase):
    """sys.stdout for the program: keeps the first `cap` characters, counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.cap - self.kept
        if room > 0:
            piece = text[:room]
            self.parts.append(piece)
            self.kept += len(piece)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


_LIMITED = (
    "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_STACK",
    "RLIMIT_DATA", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING", "RLIMIT_LOCKS",
)  # fmt: skip
RLIMITS = tuple(getattr(resource, name) for name in _LIMITED if hasattr(resource, name))


FIXED_LIMITS = {
    resource.RLIMIT_CORE: 0,
    resource.RLIMIT_MEMLOCK: 0,
    resource.RLIMIT_MSGQUEUE: 0,
    resource.RLIMIT_NICE: 0,
    resource.RLIMIT_RTPRIO: 0,
    resource.RLIMIT_RTTIME: 0,
}


def fix_limits() -> None:
    """In the zygote, once: every resource limit with its hard limit equal to the soft one, so no
    child can ever raise one (the per-program ones are set lower in each child, see `confine`)."""
    for kind in RLIMITS:
        soft, hard = resource.getrlimit(kind)
        soft = FIXED_LIMITS.get(kind, soft)
        if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft > hard):
            soft = hard
        resource.setrlimit(kind, (soft, soft))


def _set_limits(limits: dict[str, Any], scratch_bytes: int, privileged: bool) -> None:
    memory = max(64 << 20, limits["memory_bytes"] - scratch_bytes)  # scratch space is memory too
    cpu = limits["cpu_seconds"]
    wanted = (
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_NPROC, limits["max_processes"], limits["max_processes"]),
        (resource.RLIMIT_NOFILE, limits["max_open_files"], limits["max_open_files"]),
        (resource.RLIMIT_FSIZE, limits["max_file_bytes"], limits["max_file_bytes"]),
        # The one hard limit above its soft one: a second later, SIGXCPU becomes SIGKILL.
        (resource.RLIMIT_CPU, cpu, cpu + 1),
    )
    for kind, soft, hard in wanted:
        if not privileged:  # an unprivileged worker cannot raise a hard limit: stay below its own
            current = resource.getrlimit(kind)[1]
            if current != resource.RLIM_INFINITY:
                soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))


class Context:
    """What the zygote prepared once for all children (see server.py)."""

    __slots__ = (
        "devnull", "dropper", "privileged", "result_fds", "rulesets", "seccomp", "server_pid", "uid_base",
    )  # fmt: skip

    def __init__(
        self,
        *,
        devnull: int,
        dropper: Dropper,
        result_fds: list[int],
        rulesets: list[int],
        seccomp: Filter,
        server_pid: int,
        uid_base: int,
    ) -> None:
        self.devnull, self.dropper, self.result_fds, self.rulesets = devnull, dropper, result_fds, rulesets
        self.seccomp, self.server_pid, self.uid_base = seccomp, server_pid, uid_base
        self.privileged = dropper.privileged


def confine(context: Context, slot: int, limits: dict[str, Any], workdir: str, scratch_bytes: int) -> None:
    """Everything that makes the child a sandbox, in an order where each step can still run:
    limits and privileges while it still has the privilege to set them, then Landlock, descriptors,
    and the seccomp allow list last.

    Kept to system calls on things the server prepared: every Python object a fresh child
    touches costs a copied page, and these steps run once per program.
    """
    # Its own process group, so a timeout kills everything it might have started. Not its own
    # session: the kernel schedules each session as a group with an equal share of the CPU, which
    # would let a spinning program take a full share whatever its priority.
    os.setpgid(0, 0)
    os.nice(10)  # the fork server, which starts and reaps children, goes first
    _set_limits(limits, scratch_bytes, context.privileged)
    ids = context.uid_base + slot
    context.dropper.drop(ids, ids)
    context.dropper.die_with(context.server_pid)
    context.seccomp.set_no_new_privs()
    landlock.Policy.restrict(context.rulesets[slot])  # while the server's descriptor numbers still hold
    for fd in (0, 1, 2):  # C-level writes go nowhere; Python-level output is captured in memory
        os.dup2(context.devnull, fd)
    os.dup2(context.result_fds[slot], RESULT_FD)
    # The pipe's status flags (O_NONBLOCK, O_APPEND, O_ASYNC, O_DIRECT) belong to one open file
    # shared by every program of this slot: whatever the last program set, this one starts clean
    # (else flags could carry bits from one program to the next).
    if _fcntl(RESULT_FD, _F_SETFL, 0) != 0:
        raise OSError(ctypes.get_errno(), "fcntl(F_SETFL) on the result pipe")
    os.closerange(RESULT_FD + 1, 1 << 20)  # the server's pipes and descriptors are none of its business
    os.chdir(workdir)
    # Nothing the program can write is on the import path: not its directory, not '' (the server
    # runs with -P, this is the second lock).
    sys.path[:] = [p for p in sys.path if p and p != "." and not p.startswith(workdir)]
    context.seccomp.load()


def _describe(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    type_name = type(value).__name__
    try:
        text = repr(value) if isinstance(value, float) else str(value)
    except Exception as error:  # str() of a huge int raises ValueError; a custom __str__ anything
        return None, f"{type_name} ({type(error).__name__} when converting to text)"
    return text[:MAX_VALUE_CHARS], type_name


def _last_line(text: str) -> str | None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def execute(code: str, limits: dict[str, Any]) -> dict[str, Any]:
    """Run `code` and return the result fields (the caller has confined the process already)."""
    cap = limits["max_output_bytes"]
    stdout, stderr = CappedOutput(cap), CappedOutput(cap)
    sys.stdout, sys.stderr = stdout, stderr
    result: dict[str, Any] = {"status": "ok"}
    try:
        compiled = compile(code, "<program>", "exec")
    except (SyntaxError, ValueError) as error:  # ValueError: source with null bytes
        result.update(status="syntax", error_type=type(error).__name__, error_message=str(error))
        compiled = None
    if compiled is not None:
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        try:
            exec(compiled, namespace)
            solution = namespace.get("solution")
            if callable(solution):
                value = solution()
                if value is None:
                    value = _last_line(stdout.getvalue())
            elif "ans" in namespace:
                value = namespace["ans"]
            else:
                value = _last_line(stdout.getvalue())
            result["value"], result["value_type"] = _describe(value)
        except MemoryError:
            result.update(status="memory", error_type="MemoryError", error_message="memory limit reached")
        except SystemExit as error:
            result.update(status="error", error_type="SystemExit", error_message=f"exit status {error.code!r}")
        except BaseException as error:  # KeyboardInterrupt, RecursionError, anything the program raises
            try:
                message = str(error)
            except Exception:
                message = ""
            result.update(status="error", error_type=type(error).__name__, error_message=message)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    result["stdout"] = stdout.getvalue()
    result["stderr"] = stderr.getvalue()
    result["output_truncated"] = bool(stdout.dropped or stderr.dropped)
    if result.get("error_message"):
        result["error_message"] = result["error_message"][:MAX_MESSAGE_CHARS]
    return result


def _encode(result: dict[str, Any]) -> bytes:
    data = json.dumps(result, ensure_ascii=True).encode()
    if len(data) > _PIPE_SAFE_BYTES:  # keep the answer and the error; shorten the output
        room = max(0, (_PIPE_SAFE_BYTES - len(data) + len(result["stdout"]) + len(result["stderr"])) // 8)
        result = {
            **result,
            "stdout": result["stdout"][:room],
            "stderr": result["stderr"][:room],
            "output_truncated": True,
        }
        data = json.dumps(result, ensure_ascii=True).encode()
    return data


def run_child(context: Context, request: memoryview) -> None:
    """The forked child's whole life, from the request the zygote read (see server.py). Never returns."""
    gc.disable()  # nothing to collect in a process this short, and collecting would touch shared pages
    status = 0
    result_fd = -1
    try:
        try:
            slot, scratch_bytes, limits_size, dir_size = struct.unpack_from("=IQII", request)
            offset = struct.calcsize("=IQII")
            result_fd = context.result_fds[slot]
            limits = json.loads(bytes(request[offset : offset + limits_size]))
            offset += limits_size
            workdir = bytes(request[offset : offset + dir_size]).decode()
            code = bytes(request[offset + dir_size :]).decode("utf-8", "surrogatepass")
            confine(context, slot, limits, workdir, scratch_bytes)
        except BaseException as error:
            if result_fd >= 0:
                os.write(
                    result_fd,
                    json.dumps(
                        {
                            "status": "killed",
                            "error_type": protocol.SETUP_FAILED,
                            "error_message": f"{type(error).__name__}: {error}"[:MAX_MESSAGE_CHARS],
                        }
                    ).encode(),
                )
            os._exit(71)
        os.write(RESULT_FD, CONFINED)
        try:
            payload = _encode(execute(code, limits))
        except MemoryError:
            payload = b'{"status": "memory", "error_type": "MemoryError", "error_message": "memory limit reached"}'
        view = memoryview(payload)
        while view:
            view = view[os.write(RESULT_FD, view) :]
    except BaseException:
        status = 70
    finally:
        os._exit(status)
