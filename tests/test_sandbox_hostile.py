"""Hostile programs: each is classified, leaves the worker, the sandbox server and the database
intact, and the next program runs normally. Run with Landlock and in the fallback used on kernels
without it (seccomp only: no file writes at all)."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    follow_up = sandbox.run("def solution():\n    return 6 * 7\n")
    assert (follow_up.status, follow_up.value) == (Status.ok, "42")
    return result


def test_infinite_loop_times_out(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, "while True:\n    pass\n", database)
    assert result.status is Status.timeout
    assert 1_900 <= result.duration_ms <= 3_000


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
    if sandbox.info["landlock_abi"]:
        assert (result.status, result.value) == (Status.ok, "x")
    else:  # without Landlock nothing may be written anywhere
        assert (result.status, result.error_type) == (Status.error, "PermissionError")
    leftover = run_hostile(sandbox, "import os\nans = len(os.listdir('.'))\n", database)
    assert leftover.value == "0"  # the next program's directory is empty


def test_reading_files_outside_the_allowed_trees(sandbox: Sandbox, database: Path) -> None:
    result = run_hostile(sandbox, f"ans = len(open({str(database)!r}, 'rb').read())\n", database)
    if sandbox.info["landlock_abi"]:
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
