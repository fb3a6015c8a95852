"""The OpenAI-compatible teacher backend against a real local HTTP server that misbehaves on cue."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from typing import cast

import pytest

from curation.errors import CurationError
from curation.templates import Prompt
from tests.support.stub_server import Fault, Rule, StubServer, by_prompt, fixed
from workers.teachers.base import GenerationRequest, GenerationResult, SamplingParams
from workers.teachers.openai_http import HttpTeacherConfig, OpenAICompatibleTeacher

FAST_RETRIES = {"max_attempts": 4, "backoff_base": 0.01, "backoff_max": 0.05, "request_timeout": 5.0}


_made: list[OpenAICompatibleTeacher] = []


@pytest.fixture(autouse=True)
def _close_teachers() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()


def teacher(server: StubServer, **options: object) -> OpenAICompatibleTeacher:
    config = HttpTeacherConfig(base_url=server.url, model="stub", **{**FAST_RETRIES, **options})  # type: ignore[arg-type]
    backend = OpenAICompatibleTeacher(config)
    _made.append(backend)
    return backend


def ask(
    backend: OpenAICompatibleTeacher, prompts: list[str], samples: tuple[int, ...] = (0,), **params: object
) -> dict[object, GenerationResult]:
    requests = [GenerationRequest(text, Prompt(text), samples) for text in prompts]
    return {r.request.key: r for r in backend.generate(requests, SamplingParams(**params))}  # type: ignore[arg-type]


def test_chat_and_completions_with_usage_and_latency() -> None:
    with StubServer(fixed("The answer is 7."), keep_requests=True) as server:
        (chat,) = ask(teacher(server), ["Q: 3 + 4?"], temperature=0.7, max_tokens=20, stop=("END",), seed=5).values()
        (completion,) = ask(teacher(server, api="completions"), ["Q: 3 + 4?"]).values()
        sent_chat, sent_completion = server.received
    assert [c.text for c in chat.completions] == ["The answer is 7."] == [c.text for c in completion.completions]
    assert chat.prompt_tokens and chat.completion_tokens and chat.latency_ms and chat.attempts == 1
    assert sent_chat.path.endswith("/chat/completions") and sent_completion.path.endswith("/completions")
    assert sent_chat.body["messages"] == [{"role": "user", "content": "Q: 3 + 4?"}]
    assert {k: sent_chat.body[k] for k in ("temperature", "max_tokens", "stop", "seed", "n")} == {
        "temperature": 0.7,
        "max_tokens": 20,
        "stop": ["END"],
        "seed": 5,
        "n": 1,
    }
    assert sent_completion.body["prompt"] == "Q: 3 + 4?"


def test_samples_use_n_where_the_server_honours_it() -> None:
    with StubServer(by_prompt({"Q": ["a", "b", "c"]}), keep_requests=True) as server:
        (result,) = ask(teacher(server), ["Q"], samples=(0, 1, 2), temperature=0.7).values()
    assert [c.text for c in result.completions] == ["a", "b", "c"]
    assert server.generations == 1 and server.received[0].n == 3


def test_samples_are_asked_one_by_one_where_n_is_ignored() -> None:
    """`transformers serve` ignores n: the backend notices, and asks once per missing sample, each
    with its own seed; later prompts go one by one from the start."""
    with StubServer(fixed("x"), honour_n=False, keep_requests=True) as server:
        backend = teacher(server, concurrency=1)
        (first,) = ask(backend, ["Q1"], samples=(0, 1, 2), seed=10).values()
        (second,) = ask(backend, ["Q2"], samples=(3, 4), seed=10).values()
    assert len(first.completions) == 3 and len(second.completions) == 2
    numbers = [(r.prompt, r.n, r.body.get("seed")) for r in server.received]
    assert numbers == [("Q1", 3, 10), ("Q1", 1, 11), ("Q1", 1, 12), ("Q2", 1, 13), ("Q2", 1, 14)]


@pytest.mark.parametrize(
    "fault", [Fault.server_error, Fault.rate_limited, Fault.invalid_json, Fault.missing_choices, Fault.disconnect]
)
def test_transient_faults_are_retried(fault: Fault) -> None:
    with StubServer(fixed("ok"), faults=[Rule(fault, times=2)], retry_after=0.01) as server:
        (result,) = ask(teacher(server), ["Q"]).values()
    assert (result.error, [c.text for c in result.completions], result.attempts) == (None, ["ok"], 3)
    assert server.faults[fault] == 2


def test_a_hung_request_times_out_and_is_retried_without_blocking_the_others() -> None:
    with StubServer(fixed("ok"), faults=[Rule(Fault.hang, prompt_contains="slow", times=1)]) as server:
        started = time.monotonic()
        # 5 s: a fast request on a loaded machine is answered well within it, never retried.
        results = ask(teacher(server, request_timeout=5.0), ["slow", "fast-1", "fast-2"])
    assert results["slow"].attempts == 2 and results["slow"].error is None
    assert results["fast-1"].attempts == 1 and results["fast-2"].completions[0].text == "ok"
    # The hang was ended by the 5 s timeout (once), not by the 120 s default: a loose bound.
    assert time.monotonic() - started < 60


def test_retries_are_bounded_and_the_failure_is_a_result() -> None:
    with StubServer(fixed("ok"), faults=[Rule(Fault.server_error, prompt_contains="doomed")]) as server:
        results = ask(teacher(server), ["doomed", "fine"])
    assert (results["doomed"].error, results["doomed"].attempts) == ("HTTP 500", 4)
    assert results["fine"].completions[0].text == "ok"
    assert server.faults[Fault.server_error] == 4


def test_retry_after_is_honoured() -> None:
    with StubServer(fixed("ok"), faults=[Rule(Fault.rate_limited, times=1)], retry_after=0.6) as server:
        started = time.monotonic()
        (result,) = ask(teacher(server, backoff_max=5.0), ["Q"]).values()
    assert result.attempts == 2 and time.monotonic() - started >= 0.55


def test_client_errors_are_not_retried() -> None:
    with StubServer(fixed("ok"), keep_requests=True) as server:
        backend = OpenAICompatibleTeacher(
            HttpTeacherConfig(base_url=server.url.replace("/v1", "/v2"), model="stub", **FAST_RETRIES)  # type: ignore[arg-type]
        )
        _made.append(backend)
        (result,) = ask(backend, ["Q"]).values()
    assert result.error is not None and result.error.startswith("HTTP 404") and result.attempts == 1


def test_the_api_key_is_sent_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CURATION_TEST_TEACHER_KEY", "sk-very-secret")
    caplog.set_level(logging.DEBUG)
    with StubServer(fixed("ok"), faults=[Rule(Fault.server_error)], keep_requests=True) as server:
        backend = teacher(server, api_key_env="CURATION_TEST_TEACHER_KEY")
        (result,) = ask(backend, ["Q"]).values()
    assert "sk-very-secret" not in (result.error or "") and "sk-very-secret" not in caplog.text
    assert "sk-very-secret" not in repr(backend.config)
    monkeypatch.delenv("CURATION_TEST_TEACHER_KEY")
    with pytest.raises(Exception, match="CURATION_TEST_TEACHER_KEY"):
        teacher(server, api_key_env="CURATION_TEST_TEACHER_KEY")


def test_results_stream_and_stopping_early_cancels_the_rest() -> None:
    with StubServer(fixed("ok"), faults=[Rule(Fault.hang, requests=range(3, 100))]) as server:
        backend = teacher(server, concurrency=2, request_timeout=30.0)
        requests = [GenerationRequest(i, Prompt(f"Q{i}"), (0,)) for i in range(10)]
        started = time.monotonic()
        stream = cast(Generator[GenerationResult, None, None], backend.generate(requests, SamplingParams()))
        first = [next(stream), next(stream)]
        stream.close()  # the caller stops (a crash, a cancelled run): nothing may keep running
    assert len(first) == 2 and time.monotonic() - started < 5


def test_batches_reuse_the_connections_until_the_teacher_is_closed() -> None:
    with StubServer(fixed("ok")) as server:
        backend = teacher(server, concurrency=4)
        for batch in range(5):
            results = ask(backend, [f"Q{batch}-{i}" for i in range(20)])
            assert all(r.error is None for r in results.values())
        assert server.accepted <= 4  # a pool of at most `concurrency` connections, kept between batches
        threads = {t.name for t in threading.enumerate()}
        backend.close()
        assert "teacher-http" in threads and "teacher-http" not in {t.name for t in threading.enumerate()}
        # A closed teacher starts again on its next call.
        (again,) = ask(backend, ["Q"]).values()
    assert again.error is None and server.accepted <= 5


def test_closing_the_teacher_mid_call_fails_the_call_instead_of_hanging_it() -> None:
    with StubServer(fixed("ok"), faults=[Rule(Fault.hang)]) as server:
        backend = teacher(server, request_timeout=60.0)
        stream = backend.generate([GenerationRequest(0, Prompt("Q"), (0,))], SamplingParams())
        threading.Timer(0.5, backend.close).start()
        started = time.monotonic()
        with pytest.raises(CurationError, match="closed while generating"):
            next(iter(stream))
    assert time.monotonic() - started < 10


def test_a_second_stage_over_chat_continues_the_assistant_turn() -> None:
    """Zero-shot-CoT's stage 2 is the teacher's own unfinished turn: vLLM and SGLang continue it
    with continue_final_message (and no new generation prompt); completions get the whole text."""
    first = "Q: 3 + 4?\nA: Let's think step by step."
    text = first + " 3 + 4 = 7.\nTherefore, the answer (arabic numerals) is"
    stage_two = Prompt(text, continues_at=len(first))
    with StubServer(fixed(" 7."), keep_requests=True) as server:
        for backend in (
            teacher(server),
            teacher(server, continue_final_message=False),
            teacher(server, api="completions"),
        ):
            (result,) = backend.generate([GenerationRequest("k", stage_two)], SamplingParams())
            assert result.completions[0].text == " 7."
        continued, plain_turns, completion = server.received
    assert continued.body["messages"] == [
        {"role": "user", "content": first},
        {"role": "assistant", "content": " 3 + 4 = 7.\nTherefore, the answer (arabic numerals) is"},
    ]
    assert (continued.body["continue_final_message"], continued.body["add_generation_prompt"]) == (True, False)
    assert plain_turns.body["messages"] == continued.body["messages"]
    assert "continue_final_message" not in plain_turns.body and "add_generation_prompt" not in plain_turns.body
    assert completion.body["prompt"] == text and "messages" not in completion.body
