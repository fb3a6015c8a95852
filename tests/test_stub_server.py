"""The stub teacher as its clients see it: OpenAI bodies over real HTTP, keep-alive, the faults a
reliability test injects (each as httpx reports it), its counters, and its process mode."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.stub_server import (
    COT_TEXT,
    PROGRAM_TEXT,
    Fault,
    Rule,
    StubRequest,
    StubServer,
    by_prompt,
    fixed,
    program_reply,
)

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/chat/completions"
COMPLETIONS = "/completions"


def chat_body(prompt: str = "Q: What is 40 + 2?", **extra: Any) -> dict[str, Any]:
    return {"model": "teacher-x", "messages": [{"role": "user", "content": prompt}], **extra}


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[StubServer, httpx.Client]]]:
    """Starts a StubServer with the given arguments and a keep-alive client on it; both end with the test."""
    opened: list[tuple[StubServer, httpx.Client]] = []

    def start(**kwargs: Any) -> tuple[StubServer, httpx.Client]:
        server = StubServer(**kwargs).start()
        client = httpx.Client(base_url=server.url, timeout=10)
        opened.append((server, client))
        return server, client

    yield start
    for server, client in opened:
        client.close()
        server.stop()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# --- Bodies ----------------------------------------------------------------------------------------


def test_chat_completion_is_openai_shaped(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    _, client = serve()
    response = client.post(CHAT, json=chat_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion"
    assert body["model"] == "teacher-x"
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": COT_TEXT}
    assert choice["finish_reason"] == "stop"
    assert COT_TEXT.endswith("The answer is 42.")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_text_completion_in_program_mode_runs(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    _, client = serve(reply=program_reply)
    response = client.post(COMPLETIONS, json={"model": "teacher-y", "prompt": "def solution():"})
    body = response.json()
    assert (response.status_code, body["object"], body["model"]) == (200, "text_completion", "teacher-y")
    (choice,) = body["choices"]
    assert choice["text"] == PROGRAM_TEXT and choice["finish_reason"] == "stop" and choice["index"] == 0
    namespace: dict[str, Any] = {}
    exec(choice["text"], namespace)  # our own constant: a PaD-style program that really answers 42
    assert namespace["solution"]() == 42


@pytest.mark.parametrize(("honour_n", "expected"), [(True, 3), (False, 1)])
def test_n_honoured_or_ignored(
    serve: Callable[..., tuple[StubServer, httpx.Client]], honour_n: bool, expected: int
) -> None:
    _, client = serve(honour_n=honour_n)
    chat = client.post(CHAT, json=chat_body(n=3)).json()
    assert [c["index"] for c in chat["choices"]] == list(range(expected))
    # Batched prompts: n choices per prompt, numbered on through the batch as OpenAI does.
    text = client.post(COMPLETIONS, json={"model": "m", "prompt": ["a", "b"], "n": 3}).json()
    assert [c["index"] for c in text["choices"]] == list(range(2 * expected))


def test_replies_chosen_by_prompt_and_choice(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    reply = by_prompt(
        {"Natalia": ["right. The answer is 72.", "wrong. The answer is 70."], "Weng": "The answer is 10."},
        default=fixed("I do not know."),
    )
    _, client = serve(reply=reply)

    def contents(prompt: str, n: int = 1) -> list[str]:
        return [c["message"]["content"] for c in client.post(CHAT, json=chat_body(prompt, n=n)).json()["choices"]]

    assert contents("Natalia sold clips", n=3) == [
        "right. The answer is 72.",
        "wrong. The answer is 70.",
        "right. The answer is 72.",
    ]
    assert contents("Weng earns $12 an hour") == ["The answer is 10."]
    assert contents("Something else") == ["I do not know."]
    # A system message counts as prompt text too, and content parts are read.
    parts = chat_body(n=1)
    parts["messages"] = [
        {"role": "system", "content": "You are a teacher."},
        {"role": "user", "content": [{"type": "text", "text": "Weng babysits"}]},
    ]
    assert client.post(CHAT, json=parts).json()["choices"][0]["message"]["content"] == "The answer is 10."
    batch = client.post(COMPLETIONS, json={"model": "m", "prompt": ["Weng", "Natalia"]}).json()
    assert [c["text"] for c in batch["choices"]] == ["The answer is 10.", "right. The answer is 72."]


def test_models_and_health(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(model="served-folder")
    models = client.get("/models").json()
    assert models == {
        "object": "list",
        "data": [{"id": "served-folder", "object": "model", "created": 0, "owned_by": "stub"}],
    }
    assert client.get(server.url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    assert server.generations == 0  # GET requests are never numbered for a fault plan


def test_bad_requests_get_clear_errors(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve()
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/nowhere", None, 404, "no route /v1/nowhere"),
        ("GET", CHAT, None, 405, "takes POST"),
        ("POST", CHAT, b"{not json", 400, "not JSON"),
        ("POST", CHAT, {"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ("POST", CHAT, {"model": "m", "messages": []}, 400, "messages"),
        ("POST", CHAT, chat_body(n=0), 400, "n must be"),
        ("POST", CHAT, chat_body(stream=True), 400, "does not stream"),
        ("POST", COMPLETIONS, {"model": "m", "prompt": [1, 2]}, 400, "prompt must be"),
    ]
    for method, path, body, status, message in cases:
        content = body if isinstance(body, bytes) else None if body is None else orjson.dumps(body)
        response = client.request(method, path, content=content)
        assert response.status_code == status, (path, body)
        assert message in response.json()["error"]["message"], (path, body)
    assert client.request("GET", CHAT).headers["allow"] == "POST"
    assert server.accepted == 1  # none of these needs the connection closed
    assert server.generations == 0


def test_chunked_body_is_refused_with_411(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve()
    # An iterator makes httpx send Transfer-Encoding: chunked.
    response = client.post(CHAT, content=iter([b'{"model": "m", ', b'"messages": []}']))
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]["message"]
    assert response.headers["connection"] == "close"
    assert client.post(CHAT, json=chat_body()).status_code == 200  # on a new connection
    assert (server.rejected, server.accepted) == (1, 2)


# --- HTTP/1.1 on a raw socket: what httpx never sends -----------------------------------------------


def raw_exchange(server: StubServer, data: bytes) -> bytes:
    """Sends `data`, then reads until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post(body: bytes, *, version: bytes = b"HTTP/1.1", headers: bytes = b"") -> bytes:
    return b"POST /v1/chat/completions %s\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n%s" % (
        version,
        len(body),
        headers,
        body,
    )


def test_pipelined_requests_answered_in_order(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, _ = serve(reply=by_prompt({"first": "one", "second": "two"}))
    first, second = orjson.dumps(chat_body("first")), orjson.dumps(chat_body("second"))
    received = raw_exchange(server, post(first) + post(second, headers=b"connection: close\r\n"))
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert received.index(b'"content":"one"') < received.index(b'"content":"two"')
    assert received.rstrip().endswith(b"}")  # closed after the second answer, as asked


def test_http_10_expect_continue_and_missing_length(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, _ = serve()
    body = orjson.dumps(chat_body())
    # HTTP/1.0 without keep-alive: one answer, then the server closes.
    assert raw_exchange(server, post(body, version=b"HTTP/1.0")).startswith(b"HTTP/1.1 200 OK")
    # POST without Content-Length.
    answer = raw_exchange(server, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411 Length Required") and b"connection: close" in answer
    assert raw_exchange(server, b"BREW /pot\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    # Expect: 100-continue is answered before the body is sent (curl does this for large bodies).
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post(b"", headers=b"expect: 100-continue\r\n").replace(b"length: 0", b"length: %d" % len(body)))
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


# --- Keep-alive and counters -----------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(
    serve: Callable[..., tuple[StubServer, httpx.Client]],
) -> None:
    server, client = serve()
    for _ in range(300):
        assert client.post(CHAT, json=chat_body()).status_code == 200
    for _ in range(100):
        assert client.post(COMPLETIONS, json={"model": "m", "prompt": "p"}).status_code == 200
    client.get("/models")
    assert server.accepted == 1
    assert server.requests == {"/v1/chat/completions": 300, "/v1/completions": 100, "/v1/models": 1}
    assert server.generations == 400
    assert not server.faults


def test_kept_requests_are_numbered_in_arrival_order(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(keep_requests=True)
    client.post(CHAT, json=chat_body("alpha", n=2, temperature=0.7))
    client.post(COMPLETIONS, json={"model": "m", "prompt": ["beta", "gamma"]})
    first, second = server.received
    assert (first.number, first.path, first.model, first.n, first.prompt) == (
        1,
        "/v1/chat/completions",
        "teacher-x",
        2,
        "alpha",
    )
    assert first.body["temperature"] == 0.7
    assert (second.number, second.path, second.prompt) == (2, "/v1/completions", "beta\ngamma")


# --- Faults ----------------------------------------------------------------------------------------


def statuses(client: httpx.Client, prompts: list[str]) -> list[int]:
    return [client.post(CHAT, json=chat_body(prompt)).status_code for prompt in prompts]


def test_first_requests_fail_then_normal(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(faults=[Rule(Fault.server_error, times=2)])
    assert statuses(client, ["a"] * 5) == [500, 500, 200, 200, 200]
    assert client.post(CHAT, json=chat_body()).json()["choices"]  # still normal
    assert server.faults == {Fault.server_error: 2}
    assert server.accepted == 1  # a 500 leaves the connection usable


def test_prompt_rules_forever_or_a_few_times(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(
        faults=[
            Rule(Fault.server_error, prompt_contains="poison"),
            Rule(Fault.rate_limited, prompt_contains="flaky", times=2),
            Rule(Fault.missing_choices, requests={3}),
        ]
    )
    assert statuses(client, ["poison 1", "flaky", "ok", "flaky", "flaky", "poison 2", "poison 1"]) == [
        500,
        429,
        200,  # request 3: missing_choices, a 200 all the same
        429,
        200,
        500,
        500,
    ]
    assert server.faults == {Fault.server_error: 3, Fault.rate_limited: 2, Fault.missing_choices: 1}
    assert server.requests["/v1/chat/completions"] == 7


def test_rate_limited_answers_carry_retry_after(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    _, client = serve(faults=[Rule(Fault.rate_limited)], retry_after=0.25)
    response = client.post(CHAT, json=chat_body())
    assert response.status_code == 429
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("0.25", "250")
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    _, client = serve(faults=[Rule(Fault.rate_limited)])
    assert client.post(CHAT, json=chat_body()).headers["retry-after"] == "1"


def test_bodies_that_are_not_completions(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(faults=[Rule(Fault.invalid_json, requests={1}), Rule(Fault.missing_choices, requests={2})])
    garbled = client.post(CHAT, json=chat_body())
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    missing = client.post(COMPLETIONS, json={"model": "m", "prompt": "p"})
    assert missing.status_code == 200
    body = missing.json()
    assert "choices" not in body and body["object"] == "text_completion" and body["usage"]["total_tokens"] > 0
    assert server.faults == {Fault.invalid_json: 1, Fault.missing_choices: 1}


def test_disconnect_without_answer(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    server, client = serve(faults=[Rule(Fault.disconnect, requests={2})])
    assert client.post(CHAT, json=chat_body()).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post(CHAT, json=chat_body())
    assert client.post(CHAT, json=chat_body()).status_code == 200
    assert server.accepted == 2 and server.faults == {Fault.disconnect: 1}


def test_hang_times_out_without_blocking_other_connections(
    serve: Callable[..., tuple[StubServer, httpx.Client]],
) -> None:
    server, client = serve(faults=[Rule(Fault.hang, prompt_contains="stuck")])
    # 10 s to read: the 50 requests below end long before it on a loaded machine too.
    stuck_client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=10))
    with stuck_client, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(stuck_client.post, CHAT, json=chat_body("stuck"))
        wait_until(lambda: server.faults[Fault.hang] == 1)
        # The loop keeps answering everyone else while that connection waits.
        assert statuses(client, ["free"] * 50) == [200] * 50
        assert not stuck.done()
        with pytest.raises(httpx.ReadTimeout):
            stuck.result()
    assert server.accepted == 2
    wait_until(lambda: server.open_connections == 1)  # the client gave up; the server let go


def test_stop_releases_hung_connections() -> None:
    server = StubServer(faults=[Rule(Fault.hang)]).start()
    results: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(server.url + CHAT, json=chat_body(), timeout=30)
        except httpx.HTTPError as error:
            results.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: server.open_connections == 1 and server.faults[Fault.hang] == 1)
    server.stop()
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert isinstance(results[0], httpx.RemoteProtocolError | httpx.ReadError)
    server.stop()  # twice is fine


def test_fault_plan_as_a_function(serve: Callable[..., tuple[StubServer, httpx.Client]]) -> None:
    def every_other(request: StubRequest) -> Fault | None:
        return Fault.server_error if request.number % 2 else None

    _, client = serve(faults=every_other)
    assert statuses(client, ["x"] * 4) == [500, 200, 500, 200]


def test_a_broken_plan_answers_500_and_fails_the_with_block() -> None:
    def broken(request: StubRequest) -> Fault | None:
        raise KeyError("oops")

    with pytest.raises(RuntimeError, match="fault plan raised") as raised, StubServer(faults=broken) as server:
        response = httpx.post(server.url + CHAT, json=chat_body())
        assert response.status_code == 500 and "KeyError" in response.json()["error"]["message"]
    assert isinstance(raised.value.__cause__, KeyError)


# --- As a process ----------------------------------------------------------------------------------


def test_process_mode_prints_its_url_and_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "tests.support.stub_server", "--port", "0", "--mode", "program", "--print-url"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        body = httpx.post(url + COMPLETIONS, json={"model": "m", "prompt": "p", "n": 2}, timeout=10).json()
        assert [c["text"] for c in body["choices"]] == [PROGRAM_TEXT, PROGRAM_TEXT]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# --- Many requests (a sanity check, not a timing) -----------------------------------------------------


@pytest.mark.slow
def test_thousands_of_requests_one_client_and_many_connections(
    serve: Callable[..., tuple[StubServer, httpx.Client]],
) -> None:
    server, client = serve()
    payload = orjson.dumps(chat_body())
    headers = {"content-type": "application/json"}
    for _ in range(2000):
        assert client.post(CHAT, content=payload, headers=headers).status_code == 200

    def burst(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=10) as own:
            return sum(own.post(CHAT, content=payload, headers=headers).status_code == 200 for _ in range(63))

    with ThreadPoolExecutor(32) as pool:
        assert sum(pool.map(burst, range(32))) == 32 * 63
    assert server.generations == 2000 + 32 * 63
    assert server.accepted == 1 + 32
