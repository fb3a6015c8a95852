"""Hostile programs: each is classified, leaves the worker, the sandbox server and the database
intact, and the next program runs normally. Run as root (as CI does: children then run as their
own users), and in one test as an unprivileged worker (children keep its uid). There is no
fallback mode: without Landlock the sandbox refuses to start (tests/test_sandbox.py)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import hostile
from workers.sandbox import Limits, Sandbox, SandboxResult, Status
from workers.sandbox.landlock import abi_version

SECRET = "CURATION_TEST_SECRET"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    if abi_version() == 0:
        pytest.skip("this kernel has no Landlock")
    os.environ[SECRET] = "hunter2"  # set in the worker before the sandbox starts
    box = Sandbox(Limits(wall_seconds=2.0, memory_mb=256), in_flight=4)
    box.start()
    yield box
    box.close()
    os.environ.pop(SECRET, None)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "curation.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE problem (id INTEGER PRIMARY KEY, question TEXT)")
        connection.execute("INSERT INTO problem (question) VALUES ('What is 6 * 7?')")
    return path


def run_hostile(sandbox: Sandbox, code: str, database: Path) -> SandboxResult:
    server = sandbox.info["pid"]
    before = database.read_bytes()
    result = sandbox.run(code)
    assert sandbox.info["pid"] == server, "the sandbox server was restarted"
    os.kill(server, 0)  # still alive
    assert database.read_bytes() == before, "the database changed"
    assert sandbox.notices == [], "a slot was retired"
    follow_up = sandbox.run("def solution():\n    return 6 * 7\n")
    assert (follow_up.status, follow_up.value) == (Status.ok, "42")
    return result


def test_infinite_loop_times_out(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "while True:\n    pass\n", database)
    assert result.status is Status.timeout
    # Not before the 2 s limit; and killed by that limit, not by some later bound (the 30 s a
    # server would wait, a rerun): the upper bound leaves a loaded machine several seconds.
    assert 1_900 <= result.duration_ms <= 10_000


def test_cpu_spin_inside_c_times_out(sandbox: Sandbox, database: Path) -> None:
    # A single C call: no Python-level signal handler could interrupt it.
    result = run_hostile(sandbox, "ans = sum(range(10**12))\n", database)
    assert result.status is Status.timeout


def test_fork_bomb_cannot_fork(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import os\nwhile True:\n    os.fork()\n", database)
    assert (result.status, result.error_type) == (Status.error, "PermissionError")


def test_memory_bomb_hits_the_memory_limit(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))\n", database)
    assert result.status is Status.memory


def test_deep_recursion(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "def f(n):\n    return f(n + 1)\nans = f(0)\n", database)
    assert (result.status, result.error_type) == (Status.error, "RecursionError")
    # With the interpreter's guard lifted, recursion through a C function (the cache wrapper)
    # overflows the C stack: the child dies, nothing else does.
    unguarded = (
        "import functools, sys\nsys.setrecursionlimit(10**7)\n"
        "@functools.lru_cache(None)\ndef f(n):\n    return f(n + 1)\nans = f(0)\n"
    )
    result = run_hostile(sandbox, unguarded, database)
    assert (result.status, result.error_type) == (Status.killed, "SIGSEGV")


def test_100_mb_of_output_is_capped(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "print('x' * 100_000_000)\nans = 1\n", database)
    assert (result.status, result.value, result.output_truncated) == (Status.ok, "1", True)
    assert len(result.stdout) == sandbox.limits.max_output_bytes


def test_network_connection_reaches_nothing(sandbox: Sandbox, database: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(3)
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
            received.append(connection.recv(1024) or b"<connected>")
        except TimeoutError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}))\ns.sendall(b'stolen')\n"
    result = run_hostile(sandbox, code, database)
    thread.join()
    listener.close()
    assert (result.status, result.error_type) == (Status.error, "PermissionError")
    assert received == []


def test_writing_outside_its_directory(sandbox: Sandbox, database: Path) -> None:
    code = f"with open({str(database)!r}, 'w') as handle:\n    handle.write('gone')\n"
    result = run_hostile(sandbox, code, database)  # run_hostile checks the file is unchanged
    assert (result.status, result.error_type) == (Status.error, "PermissionError")
    removal = run_hostile(sandbox, f"import os\nos.remove({str(database)!r})\n", database)
    assert removal.status is Status.error
    assert database.exists()


def test_its_own_directory_is_writable_with_landlock(sandbox: Sandbox, database: Path) -> None:
    code = "with open('notes.txt', 'w') as handle:\n    handle.write('x')\nans = open('notes.txt').read()\n"
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.value) == (Status.ok, "x")
    leftover = run_hostile(sandbox, "import os\nans = len(os.listdir('.'))\n", database)
    assert leftover.value == "0"  # the next program's directory is empty


def test_reading_files_outside_the_allowed_trees(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, f"ans = len(open({str(database)!r}, 'rb').read())\n", database)
    assert (result.status, result.error_type) == (Status.error, "PermissionError")


def test_secret_environment_variable_is_not_visible(sandbox: Sandbox, database: Path) -> None:
    assert os.environ[SECRET] == "hunter2"
    result = run_hostile(sandbox, f"import os\nans = repr(os.environ.get({SECRET!r}))\n", database)
    assert (result.status, result.value) == (Status.ok, "None")
    everything = run_hostile(sandbox, "import os\nans = ' '.join(sorted(os.environ))\n", database)
    assert everything.value == "LANG LC_ALL MKL_NUM_THREADS OMP_NUM_THREADS OPENBLAS_NUM_THREADS PATH"


def test_killing_the_parent_is_refused(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import os\nos.kill(os.getppid(), 9)\n", database)
    assert (result.status, result.error_type) == (Status.error, "PermissionError")


def test_ignoring_sigterm_does_not_help(sandbox: Sandbox, database: Path) -> None:
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    assert run_hostile(sandbox, code, database).status is Status.timeout


def test_sys_exit(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import sys\nsys.exit(3)\n", database)
    assert (result.status, result.error_type, result.error_message) == (Status.error, "SystemExit", "exit status 3")


def test_keyboard_interrupt(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "raise KeyboardInterrupt\n", database)
    assert (result.status, result.error_type) == (Status.error, "KeyboardInterrupt")


def test_ctypes_segfault(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import ctypes\nctypes.string_at(0)\n", database)
    assert (result.status, result.error_type) == (Status.killed, "SIGSEGV")


def test_endless_threads(sandbox: Sandbox, database: Path) -> None:
    code = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(10,)).start()\n"
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.error_type) == (Status.error, "RuntimeError")


def test_missing_module(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import no_such_module_anywhere\n", database)
    assert (result.status, result.error_type) == (Status.error, "ModuleNotFoundError")


def test_os_exit_without_a_result(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "import os\nos._exit(3)\n", database)
    assert (result.status, result.error_type) == (Status.error, "Exit")


def test_syntax_error(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "def solution(:\n    return 1\n", database)
    assert (result.status, result.error_type) == (Status.syntax, "SyntaxError")


def test_a_batch_mixing_hostile_and_normal_programs(sandbox: Sandbox) -> None:
    programs = ["ans = 1", "while True: pass", "ans = 2", "import os\nos.fork()", "ans = 3"] * 4
    results = sandbox.run_many(programs)
    assert [r.status.value for r in results[:5]] == ["ok", "timeout", "ok", "error", "ok"]
    assert [r.value for r in results if r.status is Status.ok] == ["1", "2", "3"] * 4


# The battery: one test per class of attack seen against a root worker (issue 9). Each asserts
# the status, that nothing it aimed at changed, that the server survived (run_hostile), and that
# the next program in the same slot gives the right value (run_hostile's follow-up: a one-program
# call takes the slot the last program freed).


def _proc_state(pid: int) -> dict[str, object]:
    return {
        "limits": Path(f"/proc/{pid}/limits").read_text(),
        "priority": os.getpriority(os.PRIO_PROCESS, pid),
        "affinity": os.sched_getaffinity(pid),
        "scheduler": os.sched_getscheduler(pid),
        "stopped or dead": Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "TtZX",
    }


@pytest.fixture
def victim() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def target() -> Iterator[Path]:
    """A file every program may read (it is among the installed packages), owned by root."""
    path = Path(sysconfig.get_paths()["purelib"]) / f"_curation_hostile_target_{os.getpid()}.txt"
    path.write_text("untouched\n")
    path.chmod(0o644)
    with contextlib.suppress(OSError):
        os.setxattr(path, "user.keep", b"1")
    yield path
    path.unlink()


def _file_state(path: Path) -> tuple[object, ...]:
    info = path.stat()
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = fcntl.ioctl(fd, 0x80086601, b"\0" * 8)  # FS_IOC_GETFLAGS
    except OSError:
        flags = b""
    finally:
        os.close(fd)
    xattrs = sorted(os.listxattr(path)) if hasattr(os, "listxattr") else []
    return (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, info.st_size, flags, xattrs, path.read_text())


x86_only = pytest.mark.skipif(os.uname().machine != "x86_64", reason="raw syscall numbers are x86_64's")


def test_the_child_has_no_privilege(sandbox: Sandbox, database: Path) -> None:
    code = "import os\nans = repr((os.getresuid(), os.getresgid(), os.getgroups()))\n"
    result = run_hostile(sandbox, code, database)
    assert result.status is Status.ok
    uids, gids, groups = eval(result.value or "")
    if sandbox.info["privileged"]:
        assert 0 not in uids and 0 not in gids and groups == []
        assert len(set(uids)) == 1 and uids[0] >= sandbox.info["uid_base"]


def test_a_running_child_holds_no_privilege_as_the_kernel_sees_it(sandbox: Sandbox) -> None:
    """All five capability sets empty, no_new_privs, seccomp filtering, and (as root) ids of its
    own with no groups: read from /proc while the program runs, not from what it says."""
    server, zygote = sandbox.info["pid"], sandbox.info["zygote"]
    # Long enough to be seen on a loaded machine; the wait below ends as soon as it is.
    program = "import time\ntime.sleep(3)\nans = 1\n"
    thread = threading.Thread(target=lambda: sandbox.run(program, Limits(wall_seconds=20.0, memory_mb=256)))
    thread.start()
    status: dict[str, str] = {}
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        running = [int(pid) for pid in children if int(pid) != zygote]
        if running:
            with contextlib.suppress(FileNotFoundError):
                lines = Path(f"/proc/{running[0]}/status").read_text().splitlines()
                status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
                if status.get("Seccomp") == "2":
                    break
        threading.Event().wait(0.02)
    thread.join()
    assert status.get("Seccomp") == "2", f"the running child was not seen: {status}"
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[name], 16) == 0, name
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    if sandbox.info["privileged"]:
        uids, gids = set(status["Uid"].split()), set(status["Gid"].split())
        assert len(uids) == len(gids) == 1 and "0" not in uids | gids
        assert int(uids.pop()) >= sandbox.info["uid_base"] and status["Groups"].strip() == ""


@x86_only
def test_metadata_of_other_files_cannot_change(sandbox: Sandbox, database: Path, target: Path) -> None:
    before = _file_state(target)
    result = run_hostile(sandbox, hostile.program(hostile.METADATA, target=str(target)), database)
    assert (result.status, result.value) == (Status.ok, "none")
    assert _file_state(target) == before


@x86_only
def test_other_processes_and_the_server_cannot_be_reached(sandbox: Sandbox, database: Path, victim: int) -> None:
    server = sandbox.info["pid"]
    before = (_proc_state(victim), _proc_state(server))
    code = hostile.program(hostile.PROCESSES, victim=victim, server=server)
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.value) == (Status.ok, "none")
    assert (_proc_state(victim), _proc_state(server)) == before


@x86_only
def test_no_devices_and_no_memory_outside_the_limit(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.program(hostile.DEVICES), database)
    assert (result.status, result.value) == (Status.ok, "none")
    assert not os.path.exists("/dev/shm/hostile")


def test_a_planted_module_never_meets_a_later_program(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.program(hostile.PLANT), database)
    assert result.status is Status.ok
    written = set((result.value or "").split(","))
    assert written <= {"write-typing", "write-fractions_plant", "write-sitecustomize", "write-json"}
    for _ in range(sandbox.in_flight + 1):  # whichever slot runs it: an empty directory, '' not on the path
        later = sandbox.run(hostile.AFTER_PLANT)
        assert (later.status, later.value) == (Status.ok, "|0")
    assert sandbox.notices == []


def test_a_deep_tree_is_removed_and_the_slot_kept(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.program(hostile.DEEP_TREE), database)
    assert result.status in (Status.ok, Status.timeout)  # stopped by the inode cap of its tmpfs, or the clock
    assert sandbox.notices == []
    assert run_hostile(sandbox, "import os\nans = len(os.listdir('.'))\n", database).value == "0"


def test_siblings_sources_are_not_in_a_childs_memory(sandbox: Sandbox) -> None:
    token = os.urandom(8).hex()
    programs = [hostile.SIBLING_SECRET.format(token=token)] * 3 + [
        hostile.program(hostile.SIBLING_SEARCH, token=token)
    ] * 3
    programs += [hostile.SIBLING_SECRET.format(token=token)] * 3
    results = sandbox.run_many(programs)
    assert [r.value for r in results[3:6]] == ["none"] * 3
    assert [r.value for r in results[:3] + results[6:]] == ["secret-holder"] * 6


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (hostile.DEEP_JSON, "the program wrote to the sandbox's result channel"),
        (hostile.BINARY_CHANNEL, "the program wrote to the sandbox's result channel"),
        (hostile.FLOOD_CHANNEL, "wrote more than"),
    ],
    ids=["deep-json", "binary", "flood"],
)
def test_anything_on_the_result_channel_is_a_killed_result(
    sandbox: Sandbox, database: Path, code: str, why: str
) -> None:
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.error_type) == (Status.killed, "InvalidResult")
    assert why in (result.error_message or "")


def test_a_report_then_overrunning_the_deadline_is_a_timeout(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.LAUNDERED_DEADLINE, database)
    assert (result.status, result.value) == (Status.timeout, None)
    assert 1_900 <= result.duration_ms <= 3_500  # the server's clock, not anything the child said


@x86_only
def test_real_time_signals_are_contained(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.program(hostile.REAL_TIME_SIGNALS), database)
    assert (result.status, result.value) == (Status.ok, "none")


def test_every_signal_number_has_a_name_and_a_result() -> None:
    from workers.sandbox.server import _classify, _Running, signal_name

    running = _Running(0, 0, "/", 1.0, 0.0)
    for number in range(1, 65):
        assert signal_name(number)
        result = _classify(number, b"R", running, 5.0, 100)  # a wait status for "killed by signal N"
        assert result["status"] in ("killed", "timeout") and result["error_type"]
    assert signal_name(signal.SIGRTMIN + 2) == "SIGRTMIN+2"


@x86_only
def test_other_processes_memory_and_any_signal_are_out_of_reach(sandbox: Sandbox, database: Path, victim: int) -> None:
    server = sandbox.info["pid"]
    before = (_proc_state(victim), _proc_state(server), _proc_state(sandbox.info["zygote"]))
    result = run_hostile(sandbox, hostile.program(hostile.MEMORY_AND_SIGNALS, victim=victim), database)
    assert (result.status, result.value) == (Status.ok, "none")
    assert (_proc_state(victim), _proc_state(server), _proc_state(sandbox.info["zygote"])) == before


def test_sibling_pids_cannot_be_probed(sandbox: Sandbox) -> None:
    # Siblings are running while the probes run: pids next to the probe's own are theirs.
    programs = ["import time\ntime.sleep(0.5)\nans = 'slept'\n"] * 2
    programs += [hostile.program(hostile.SIBLING_PIDS)] * 2
    results = sandbox.run_many(programs)
    assert [(r.status, r.value) for r in results] == [(Status.ok, "slept")] * 2 + [(Status.ok, "none")] * 2
    assert sandbox.run("import os\nans = os.getpgid(0) == os.getpid() == os.getsid(0) or 'own group'").value


@x86_only
def test_the_rest_of_the_kernel_is_refused(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, hostile.program(hostile.KERNEL), database)
    assert (result.status, result.value) == (Status.ok, "none")


@x86_only
def test_files_elsewhere_and_links_out_of_its_directory(sandbox: Sandbox, database: Path, tmp_path: Path) -> None:
    project = Path(__file__).resolve().parents[1]
    written = [Path("/tmp") / f"curation-hostile-{os.getpid()}", project / f"hostile-{os.getpid()}"]
    code = hostile.program(
        hostile.FILES, tmp=str(written[0]), project=str(written[1]), readme=str(project / "README.md")
    )
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.value) == (Status.ok, "none")
    assert not any(path.exists() for path in written)


@x86_only
@pytest.mark.parametrize(
    "code",
    [
        # i386's getpid through int 0x80, from a page of machine code
        "import ctypes, mmap\nm = mmap.mmap(-1, 4096, prot=7)\nm.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')\n"
        "ans = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()\n",
        # x32's getpid
        "import ctypes\nans = ctypes.CDLL(None).syscall(0x40000000 + 39)\n",
    ],
    ids=["i386", "x32"],
)
def test_other_system_call_entry_points_kill_the_program(sandbox: Sandbox, database: Path, code: str) -> None:
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.error_type) == (Status.killed, "SIGSYS")


_FORGED = '{"status": "ok", "value": "999"}'


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\nos.close(3)\nans = 7\n", ("error", "Exit", None)),
        ("import os\nr, w = os.pipe()\nos.dup2(w, 3)\nans = 7\n", ("error", "Exit", None)),
        ("import os, fcntl\nfcntl.fcntl(3, fcntl.F_SETFL, os.O_NONBLOCK)\nans = 7\n", ("ok", None, "7")),
        # forged reports elsewhere are only output
        (
            f"import os, sys\nprint({_FORGED!r})\nsys.stderr.write({_FORGED!r})\n"
            f"os.write(1, b'R' + {_FORGED!r}.encode())\n"
            f"os.write(2, {_FORGED!r}.encode())\nans = 5\n",
            ("ok", None, "5"),
        ),
        # a report with a field only the server writes
        (
            'import os\nos.write(3, b\'{"status": "ok", "value": "9", "duration_ms": 1}\')\nos._exit(0)\n',
            ("killed", "InvalidResult", None),
        ),
        # the sandbox's own failures, forged: never a SandboxError (which would fail the batch)
        (
            'import os\nos.write(3, b\'{"status": "killed", "error_type": "SandboxSetupError"}\')\nos._exit(71)\n',
            ("killed", "InvalidResult", None),
        ),
        (
            'import os\nos.write(3, b\'{"status": "killed", "error_type": "SandboxLost"}\')\nos._exit(0)\n',
            ("killed", "InvalidResult", None),
        ),
        (
            'import os\nos.write(3, b\'{"status": "ok", "value": NaN}\')\nos._exit(0)\n',
            ("killed", "InvalidResult", None),
        ),
        (
            "import os\nos.write(3, b'{\"status\": \"ok\", \"value\": ' + b'1' * 5000 + b'}')\nos._exit(0)\n",
            ("killed", "InvalidResult", None),
        ),
    ],
    ids=["close", "dup2", "nonblocking", "other-channels", "server-field", "setup-failure", "lost", "nan", "big-int"],
)
def test_tricks_with_the_result_channel(
    sandbox: Sandbox, database: Path, code: str, expected: tuple[str, ...]
) -> None:
    result = run_hostile(sandbox, code, database)  # a SandboxError would raise here
    assert (result.status.value, result.error_type if expected[1] else None, result.value) == expected


def test_result_pipe_flags_carry_nothing_to_the_next_program() -> None:
    """The result pipe's open file is shared by a slot's programs: flags one sets must not reach the next."""
    with Sandbox(Limits(wall_seconds=2.0), in_flight=1) as box:  # one slot: the next program is in it
        flags = "os.O_NONBLOCK | os.O_APPEND | os.O_ASYNC | os.O_DIRECT"
        setter = f"import fcntl, os\nfcntl.fcntl(3, fcntl.F_SETFL, {flags})\n"
        setter += f"ans = fcntl.fcntl(3, fcntl.F_GETFL) & ({flags})\n"
        assert box.run(setter).value != "0"
        later = box.run("import fcntl, os\nans = fcntl.fcntl(3, fcntl.F_GETFL) & ~os.O_ACCMODE\n")
        assert (later.status, later.value) == (Status.ok, "0")


@pytest.mark.parametrize(
    ("code", "status", "detail"),
    [
        ("class X:\n    def __repr__(self): raise SystemExit(3)\n    def __str__(self): raise KeyboardInterrupt\n"
         "    def __eq__(self, other): raise SystemExit\n    def __float__(self): raise SystemExit\nans = X()\n",
         "error", "KeyboardInterrupt"),
        ("class S(str):\n    def __str__(self): return self\n"
         "    def __len__(self): raise SystemExit\nans = S('abc')\n",
         "ok", "abc"),
        ("class M(type):\n    @property\n    def __name__(cls): return {'not': 'text'}\n"
         "class E(Exception, metaclass=M): pass\nraise E('boom')\n", "killed", "InvalidResult"),
        ("class E(Exception):\n    def __str__(self): raise SystemExit\nraise E()\n", "error", "Exit"),
        ("class B(BaseException): pass\nraise B('b')\n", "error", "B"),
        ("raise SystemExit(0)\n", "error", "SystemExit"),
        ("import os\nos._exit(0)\n", "error", "Exit"),
        ("import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0.05)\ntime.sleep(1)\n", "killed", "SIGALRM"),
        ("import sys\nsys.set_int_max_str_digits(0)\nans = 10 ** 200_000\n", "ok", "1" + "0" * 4095),
    ],
    ids=["hostile-dunders", "str-subclass", "exception-name", "exception-str", "base-exception", "exit-0",
         "os-exit-0", "sigalrm", "huge-int"],
)  # fmt: skip
def test_hostile_values_and_endings(sandbox: Sandbox, database: Path, code: str, status: str, detail: str) -> None:
    """Whatever the program's objects do runs in its child; the server only ever sees text."""
    result = run_hostile(sandbox, code, database)
    assert result.status.value == status
    assert detail in (result.value, result.error_type)


def test_deep_recursion_with_no_recursion_limit(sandbox: Sandbox, database: Path) -> None:
    code = "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1) + 1\nans = f(0)\n"
    result = run_hostile(sandbox, code, database)
    assert result.status in (Status.error, Status.killed, Status.memory)  # the C stack's overflow, however it shows


@pytest.mark.parametrize(
    ("code", "value"),
    [
        # a file past its directory's cap (max_file_mb = 8)
        ("n = 0\ntry:\n    with open('big', 'wb') as f:\n        for _ in range(100):\n"
         "            f.write(b'x' * (1 << 20)); f.flush(); n += 1\nexcept OSError:\n    pass\nans = n\n", "8"),
        ("import os\nfd = os.open('.', os.O_TMPFILE | os.O_RDWR, 0o600)\nn = 0\ntry:\n    while True:\n"
         "        os.write(fd, b'x' * (1 << 20)); n += 1\nexcept OSError:\n    pass\nans = n\n", "8"),
        # every inode of its directory
        ("n = 0\ntry:\n    while True:\n        open(f'f{n}', 'w').close(); n += 1\n"
         "except OSError as error:\n    ans = error.errno == 28 and n < 4096\n", "True"),
        ("import mmap\ntry:\n    mmap.mmap(-1, 8 << 30)\nexcept OSError as error:\n    ans = error.errno\n", "12"),
        (hostile.program(
            "libc.mmap.restype = ctypes.c_void_p\n"
            "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,"
            " ctypes.c_long]\n"
            "def mapped(flags):\n    address = libc.mmap(None, 4 << 30, 3, flags, -1, 0)\n"
            "    return address not in (None, ctypes.c_void_p(-1).value) or False\n"
            "attempt('noreserve', lambda: mapped(0x22 | 0x4000))\nattempt('shared', lambda: mapped(0x21))\n"
        ), "none"),
    ],
    ids=["file-past-cap", "tmpfile-past-cap", "inodes", "mmap-8g", "mmap-noreserve-and-shared"],
)  # fmt: skip
def test_memory_and_space_past_the_limits(sandbox: Sandbox, database: Path, code: str, value: str) -> None:
    result = run_hostile(sandbox, code, database)
    assert (result.status, result.value) == (Status.ok, value)
    assert run_hostile(sandbox, "import os\nans = len(os.listdir('.'))\n", database).value == "0"


def test_a_hostile_batch_finishes_for_everyone_else(sandbox: Sandbox) -> None:
    hostile_programs = [
        hostile.DEEP_JSON,
        hostile.FLOOD_CHANNEL,
        hostile.LAUNDERED_DEADLINE,
        hostile.program(hostile.DEEP_TREE),
        "import os\nos.write(3, b'\\xff' * 70000)\n",
        "import ctypes\nctypes.string_at(0)\n",
    ]
    programs = [f"ans = {i}" for i in range(12)] + hostile_programs + [f"ans = {i}" for i in range(12, 24)]
    results = sandbox.run_many(programs)
    normal = [r for r in results if r.status is Status.ok and r.value and r.value.isdigit()]
    assert [r.value for r in normal] == [str(i) for i in range(24)]
    assert sandbox.notices == []


@pytest.mark.parametrize("module", ["numpy", "sympy", "json.tool", "email.mime.text", "sqlite3"])
def test_installed_packages_and_the_standard_library_import(sandbox: Sandbox, database: Path, module: str) -> None:
    code = f"import {module}\nans = {module}.__name__\n"
    limits = Limits(wall_seconds=20.0, memory_mb=1024)  # sympy takes seconds to import on a loaded machine
    result = sandbox.run(code, limits)
    assert (result.status, result.value) == (Status.ok, module), result.error_message
    installed = f"import {module}, os\nos.listdir(os.path.dirname({module}.__file__))\nopen({module}.__file__, 'a')\n"
    assert sandbox.run(installed, limits).error_type == "PermissionError"  # readable, not writable


def test_the_server_dying_takes_its_children_and_scratch_with_it() -> None:
    with Sandbox(Limits(wall_seconds=30.0), in_flight=2) as box:
        box.start()
        server, scratch = box.info["pid"], box.info["scratch"]
        thread = threading.Thread(target=lambda: box.run_many(["import time\ntime.sleep(25)"] * 2))
        thread.start()
        children: list[int] = []
        for _ in range(100):
            children = [int(p) for p in Path(f"/proc/{server}/task/{server}/children").read_text().split()]
            if len(children) >= 3:  # the zygote and two programs
                break
            threading.Event().wait(0.05)
        assert len(children) >= 3
        os.kill(server, signal.SIGKILL)
        thread.join(timeout=60)  # the client restarts the server and runs the batch again
        for pid in children:
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
                    break
                threading.Event().wait(0.05)
            assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        # Nothing on the host: a root server's scratch space is in its own mount namespace.
        assert not os.path.exists(scratch) and not os.path.exists(f"/dev/shm/curation-sandbox-{server}")


UNPRIVILEGED_WORKER = r"""
import json, os, subprocess, sys, time
from tests.support import hostile
from workers.sandbox import DEFAULT_PRELOAD, Limits, Sandbox
target = sys.argv[1]
# The children cannot read an interpreter under /root here (the worker itself needs a capability
# for it): what the programs import comes preloaded instead.
preload = (*DEFAULT_PRELOAD, "ctypes", "fcntl", "resource", "signal", "stat", "struct", "gc", "threading")
preload += ("errno", "typing", "socket")
victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the worker's own uid
outcome = {"uid": os.getuid()}
# Room for the benign programs on a loaded machine; the one that must time out gets 2 s (below).
with Sandbox(Limits(wall_seconds=20.0), in_flight=2, preload=preload) as box:
    box.start()
    outcome["privileged"] = box.info["privileged"]
    scratch = box.info["scratch"]
    def run(code, limits=None):
        result = box.run(code, limits)
        return [result.status.value, result.value, box.run("ans = 6 * 7").value]
    outcome["ids"] = run("import os\nans = repr((os.getresuid(), os.getgroups()))")
    outcome["processes"] = run(hostile.program(hostile.PROCESSES, victim=victim.pid, server=box.info["pid"]))
    outcome["metadata"] = run(hostile.program(hostile.METADATA, target=target))
    # The same uid as the victim and the server: only the seccomp allow list stands between them.
    outcome["signals"] = run(hostile.program(hostile.MEMORY_AND_SIGNALS, victim=victim.pid))
    outcome["pids"] = run(hostile.program(hostile.SIBLING_PIDS))
    outcome["kernel"] = run(hostile.program(hostile.KERNEL))
    outcome["devices"] = run(hostile.program(hostile.DEVICES))
    outcome["plant"] = run(hostile.program(hostile.PLANT))
    outcome["after_plant"] = run(hostile.AFTER_PLANT)
    outcome["deep"] = run(hostile.program(hostile.DEEP_TREE), Limits(wall_seconds=2.0))  # either outcome
    outcome["empty"] = run("import os\nans = len(os.listdir('.'))")
    outcome["channel"] = run(hostile.DEEP_JSON)
    outcome["laundered"] = run(hostile.LAUNDERED_DEADLINE, Limits(wall_seconds=2.0))
    outcome["notices"] = box.notices
    outcome["server_alive"] = box.info["pid"]
victim_alive = victim.poll() is None
victim.kill()
outcome["victim_alive"] = victim_alive
outcome["scratch_left"] = os.path.exists(scratch)
print(json.dumps(outcome))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_an_unprivileged_worker_gets_the_same_containment(target: Path) -> None:
    """The mode for a worker that is not root: children keep its uid (no capabilities), private
    directories are plain ones. The interpreter here may live under /root, so the worker keeps one
    capability, to read it; the children must lose that one too."""
    os.chown(target, 65534, 65534)
    before = _file_state(target)
    completed = subprocess.run(
        [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps",
            "+dac_read_search",
            "--ambient-caps",
            "+dac_read_search",
            sys.executable,
            "-c",
            UNPRIVILEGED_WORKER,
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": os.environ["PATH"], "HOME": "/tmp", "CURATION_DATA_DIR": "/tmp"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (outcome["uid"], outcome["privileged"]) == (65534, False)
    assert outcome["ids"] == ["ok", "((65534, 65534, 65534), [])", "42"]
    for attack in ("processes", "metadata", "devices", "signals", "pids", "kernel"):
        assert outcome[attack] == ["ok", "none", "42"], attack
    assert outcome["after_plant"] == ["ok", "|0", "42"]
    assert outcome["deep"][0] in ("ok", "timeout") and outcome["deep"][2] == "42"
    assert outcome["empty"] == ["ok", "0", "42"]
    assert outcome["channel"] == ["killed", None, "42"]
    assert outcome["laundered"] == ["timeout", None, "42"]
    assert outcome["notices"] == [] and outcome["victim_alive"] and not outcome["scratch_left"]
    assert _file_state(target) == before


SYSTEM_INTERPRETER = """
import json
from workers.sandbox import Limits, Sandbox
programs = (
    "import yaml\\nans = yaml.__file__",
    "import numpy\\nans = (numpy.__file__, int(numpy.arange(10).sum()))",
    "import sympy\\nx = sympy.Symbol('x')\\nans = (sympy.__file__, str(sympy.solve(x**2 - 4, x)))",
    "import json.tool\\nans = 1",
)
# sympy takes seconds to import on a loaded machine (as in the test of installed packages above)
with Sandbox(Limits(wall_seconds=20.0, memory_mb=1024), in_flight=2, uid_base=1_500_000_000) as box:
    results = [box.run(code) for code in programs]
    print(json.dumps([[r.status.value, r.value] for r in results]))
"""
# The distribution's own packages (CI installs them: python3-yaml, python3-numpy, python3-sympy).
SYSTEM_PACKAGES = ("yaml", "numpy", "sympy")


@pytest.mark.skipif(
    subprocess.run(["/usr/bin/python3", "-c", "import " + ", ".join(SYSTEM_PACKAGES)], capture_output=True).returncode
    != 0
    if os.path.exists("/usr/bin/python3")
    else True,
    reason="needs a system interpreter with PyYAML, numpy and sympy in its dist-packages",
)
def test_a_system_interpreter_imports_its_own_packages() -> None:
    """Outside a virtualenv the installed packages are the distribution's dist-packages, and
    compiled ones (numpy's extension modules and the BLAS they load) import too."""
    completed = subprocess.run(
        ["/usr/bin/python3", "-c", SYSTEM_INTERPRETER],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    yaml, numpy, sympy, stdlib = json.loads(completed.stdout.strip().splitlines()[-1])
    assert yaml[0] == "ok" and "-packages/yaml/" in yaml[1]
    assert numpy[0] == "ok" and "-packages/numpy/" in numpy[1] and numpy[1].endswith(", 45)"), numpy
    assert sympy[0] == "ok" and "-packages/sympy/" in sympy[1] and "[-2, 2]" in sympy[1], sympy
    assert stdlib == ["ok", "1"]


RETIRING_SERVER = """
import json, sys
from workers.sandbox import Limits, server
server.remove_tree = lambda path: False  # a clean-up that leaves something behind, every time
box = server.Server({"in_flight": 2, "preload": [], "uid_base": 1_500_000_000}, ())
limits = Limits().for_child()
outcome = []
for _ in range(2):
    results, notices = box.run_batch(["ans = 6 * 7"], limits)
    outcome.append([results[0]["status"], results[0].get("value"), notices, sorted(box.free_slots)])
try:
    box.run_batch(["ans = 1"], limits)
except server.NoSlotsLeft as error:
    outcome.append(str(error))
box.close()
print(json.dumps(outcome))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a root server (its own mount namespace)")
def test_a_failed_clean_up_retires_the_slot_and_says_so() -> None:
    """Fail closed: a slot whose private directory could not be emptied never runs another program,
    the server says which, and with every slot retired it refuses to run rather than reuse one."""
    completed = subprocess.run(
        [sys.executable, "-c", RETIRING_SERVER],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second, refused = json.loads(completed.stdout.strip().splitlines()[-1])
    assert first[:2] == second[:2] == ["ok", "42"]
    assert len(first[2]) == len(second[2]) == 1 and "retired" in first[2][0] and first[2] != second[2]
    assert (len(first[3]), second[3]) == (1, [])
    assert "retired" in refused
