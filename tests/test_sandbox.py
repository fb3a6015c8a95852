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
    assert sandbox.run("import time\ntime.sleep(1)\nans = 1").value == "1"


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
