"""How programs' answers are found (PaD, PAL, Program-of-Thoughts styles), and the sandbox's own
behaviour: batches, limits, and surviving the loss of its server."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from curation.models import ExecutionStatus
from workers.sandbox import Limits, Sandbox, Status
from workers.sandbox.server import expected_cost


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(in_flight=4) as box:
        yield box


PAD = '''def solution():
    """Natalia sold clips to 48 of her friends in April, and then half as many in May."""
    clips_april = 48
    clips_may = clips_april / 2
    result = clips_april + clips_may
    return result
'''
PAL_PRINTING = """def solution():
    money_initial = 23
    bagels = 5
    money_left = money_initial - bagels * 3
    print(money_left)

if __name__ == "__main__":
    solution()
"""
POT = "total_eggs = 16\neaten_eggs = 3\nbaked_eggs = 4\nans = (total_eggs - eaten_eggs - baked_eggs) * 2\n"


@pytest.mark.parametrize(
    ("code", "value", "value_type"),
    [
        (PAD, "72.0", "float"),
        (PAL_PRINTING, "8", "str"),
        (POT, "18", "int"),
        ("print('thinking')\nprint(42)\n", "42", "str"),
        ("def solution():\n    return True\n", "True", "bool"),
        ("ans = 10**5000\n", None, "int (ValueError when converting to text)"),
        ("ans = 0.1 + 0.2\n", "0.30000000000000004", "float"),
        ("from fractions import Fraction\nans = Fraction(3, 4)\n", "3/4", "Fraction"),
        ("x = 1\n", None, None),
    ],
)
def test_answer_conventions(sandbox: Sandbox, code: str, value: str | None, value_type: str | None) -> None:
    result = sandbox.run(code)
    assert (result.status, result.value, result.value_type) == (Status.ok, value, value_type)


def test_statuses_match_the_database_enum() -> None:
    assert {s.value for s in Status} == {s.value for s in ExecutionStatus}


def test_results_come_back_in_order_whatever_runs_first(sandbox: Sandbox) -> None:
    programs = [f"ans = {i}" if i % 7 else f"for _ in range(10**5): pass\nans = {i}" for i in range(60)]
    assert [r.value for r in sandbox.run_many(programs)] == [str(i) for i in range(60)]


def test_longest_guess_first() -> None:
    assert expected_cost("ans = 1") == 0
    assert expected_cost("for a in x:\n    for b in y:\n        pass\n") > expected_cost("while True:\n    pass\n") > 0


def test_limits_are_per_call_and_hashed(sandbox: Sandbox) -> None:
    tight = Limits(wall_seconds=0.5)
    assert tight.digest() != Limits().digest()
    assert Limits().digest() == Limits().digest()
    result = sandbox.run("import time\ntime.sleep(1)\nans = 1", tight)
    assert result.status is Status.timeout
    assert sandbox.run("import time\ntime.sleep(1)\nans = 1", Limits(wall_seconds=20.0)).value == "1"


def test_the_sandbox_survives_losing_its_server() -> None:
    with Sandbox(in_flight=2) as box:
        box.start()
        first = box.info["pid"]
        os.kill(first, signal.SIGKILL)
        assert box.run("ans = 6 * 7").value == "42"  # a new server, started transparently
        assert box.info["pid"] != first


def test_string_hashing_is_the_same_in_every_sandbox() -> None:
    """Set iteration order of strings depends on the hash seed; a fixed seed makes reruns agree."""
    code = "ans = ','.join(sorted({'apple', 'pear', 'fig', 'kiwi'}, key=hash))\n"
    values = set()
    for _ in range(2):
        with Sandbox(in_flight=1) as box:
            values.add(box.run(code).value)
    assert len(values) == 1


def test_an_interrupted_batch_does_not_answer_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A soft time limit or Ctrl-C can land between sending a batch and reading its reply; the
    reply must never be taken for the next batch's."""
    from workers.sandbox import protocol

    receive = protocol.receive
    calls = {"n": 0}

    def interrupted_once(fd: int) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the first call reads the server's greeting
            raise KeyboardInterrupt
        return receive(fd)

    with Sandbox(in_flight=2) as box:
        monkeypatch.setattr(protocol, "receive", interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            box.run("ans = 1")
        assert [r.value for r in box.run_many(["ans = 2", "ans = 3"])] == ["2", "3"]


def test_a_server_that_keeps_dying_raises_instead_of_recording_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.sandbox import SandboxError, protocol

    receive = protocol.receive

    def server_dies_on_every_batch(fd: int) -> object:
        reply = receive(fd)
        if "results" in reply:
            raise protocol.ProtocolError("the other side closed the pipe")
        return reply

    with Sandbox(in_flight=2) as box:
        monkeypatch.setattr(protocol, "receive", server_dies_on_every_batch)
        with pytest.raises(SandboxError, match="died twice"):
            box.run("ans = 1")


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.write(3, b'garbage')\nans = 1\n",
        # A well-formed report claiming the sandbox failed, then an exit before the real one.
        "import os, json\nos.write(3, json.dumps({'status': 'killed', 'error_type': 'SandboxSetupError'}).encode())\n"
        "os._exit(0)\n",
        'import os\nos.write(3, b\'{"status": "ok", "value": "42", "injected": 1}\')\nos._exit(0)\n',
    ],
    ids=["garbage", "forged-setup-failure", "unknown-field"],
)
def test_a_program_cannot_forge_its_report(sandbox: Sandbox, code: str) -> None:
    result = sandbox.run(code)
    assert (result.status, result.error_type) == (Status.killed, "InvalidResult")


def test_results_are_text_a_database_can_store(sandbox: Sandbox) -> None:
    """PostgreSQL text holds neither NUL nor lone surrogates; a program can produce both."""
    result = sandbox.run("print('a\\x00b', '\\ud800')\ndef solution():\n    return 'x\\x00y\\udfff'\n")
    assert result.status is Status.ok
    for text in (result.value or "", result.stdout):
        assert "\x00" not in text
        text.encode()  # no lone surrogates
    assert result.value == "x\ufffdy?"


def test_in_flight_defaults_to_what_cpus_and_memory_allow() -> None:
    from workers.sandbox.client import default_in_flight

    cpus = len(os.sched_getaffinity(0))
    assert 2 <= default_in_flight(Limits()) <= max(2, 4 * cpus)
    assert default_in_flight(Limits(memory_mb=1 << 30)) == 2  # a petabyte each: only the floor fits


NO_LANDLOCK_KERNEL = r"""
import ctypes, json, struct, sys
# A seccomp filter that makes landlock_create_ruleset fail with ENOSYS, as on a kernel built
# without Landlock; it is inherited by the sandbox server this process starts.
program = b"".join(struct.pack("HBBI", *ins) for ins in [
    (0x20, 0, 0, 0),                    # load the syscall number
    (0x15, 0, 1, 444),                  # landlock_create_ruleset?
    (0x06, 0, 0, 0x00050000 | 38),      # then fail with ENOSYS
    (0x06, 0, 0, 0x7FFF0000),           # else allow
])
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.prctl(22, 2, ctypes.byref(Prog(4, program)), 0, 0) == 0
from workers.sandbox import Sandbox, SandboxError
outcome = {}
try:
    Sandbox(in_flight=1).run("ans = 1")
except SandboxError as error:
    outcome["required"] = str(error)
print(json.dumps(outcome))
"""


def test_landlock_is_required() -> None:
    """There is no seccomp-only mode: a kernel without Landlock gets a clear error, and no program runs."""
    import json
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", NO_LANDLOCK_KERNEL], capture_output=True, text=True, timeout=60, check=True
    )
    outcome = json.loads(completed.stdout)
    assert "no Landlock" in outcome["required"] and "Linux 5.13" in outcome["required"]
