"""A local OpenAI-compatible teacher that answers at once, or fails on purpose.

Two uses:
- benchmarks of the system's own cost per generation: a zero-latency responder, so what is
  measured is our pipeline, not a model. It must stay cheap while the pipeline shares its cores,
  hence asyncio protocols and a minimal HTTP/1.1 (keep-alive, pipelining, Content-Length bodies),
  one `transport.write` per answer and no third-party web stack;
- reliability tests: a deterministic fault plan makes chosen requests get HTTP 500, HTTP 429 with
  Retry-After, a 200 whose body is not JSON or lacks `choices`, a closed connection, or no answer
  at all (the connection hangs until the client gives up; other connections are unaffected).

    with StubServer(reply=by_prompt({"Natalia": "... The answer is 72."}),
                    faults=[Rule(Fault.server_error, times=2)]) as teacher:
        ...  # point the teacher client at teacher.url (http://127.0.0.1:PORT/v1)

or as its own process, so that it does not share the pipeline's GIL:

    python -m tests.support.stub_server --port 0 --mode cot --print-url

Endpoints: POST /v1/chat/completions and /v1/completions (OpenAI bodies; `model` echoed, `n`
choices unless honour_n=False, which answers one choice as `transformers serve` does), GET
/v1/models and GET /health. Streaming is refused: no client of ours asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import math
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# --- Replies ---------------------------------------------------------------------------------------

Reply = Callable[[str, int], str]
"""(prompt text, choice index) -> the text of that choice. The prompt text of a chat request is its
messages' contents joined by newlines; a batched completions request asks once per prompt."""

COT_TEXT = (
    "Let's think step by step. The basket holds 40 apples at the start. Then 2 more apples are put "
    "into the basket. So the basket holds 40 + 2 = 42 apples. The answer is 42."
)
PROGRAM_TEXT = (
    "def solution():\n"
    "    apples_at_start = 40\n"
    "    apples_added = 2\n"
    "    result = apples_at_start + apples_added\n"
    "    return result\n"
)


def cot_reply(prompt: str, index: int) -> str:
    return COT_TEXT


def program_reply(prompt: str, index: int) -> str:
    return PROGRAM_TEXT


def fixed(text: str) -> Reply:
    """Every choice of every request is `text`."""

    def reply(prompt: str, index: int) -> str:
        return text

    return reply


def by_prompt(replies: Mapping[str, str | Sequence[str]], default: Reply = cot_reply) -> Reply:
    """The reply of the first key (in mapping order) found in the prompt, else `default`.

    A value that is a list gives choice i its item i (cycling), so one request with n > 1 can
    carry right and wrong rationales for the same problem, as diverse sampling does.
    """
    table = list(replies.items())

    def reply(prompt: str, index: int) -> str:
        for key, value in table:
            if key in prompt:
                return value if isinstance(value, str) else value[index % len(value)]
        return default(prompt, index)

    return reply


REPLY_MODES: dict[str, Reply] = {"cot": cot_reply, "program": program_reply}


# --- Faults ----------------------------------------------------------------------------------------


class Fault(enum.StrEnum):
    server_error = "server_error"  # HTTP 500, OpenAI error body; the connection stays usable
    rate_limited = "rate_limited"  # HTTP 429 with Retry-After (and retry-after-ms)
    invalid_json = "invalid_json"  # HTTP 200, a body cut off mid-JSON
    missing_choices = "missing_choices"  # HTTP 200, a well-formed completion object without `choices`
    disconnect = "disconnect"  # the connection is closed without an answer
    hang = "hang"  # no answer ever; the connection is held until the client closes it


@dataclass(frozen=True, slots=True)
class StubRequest:
    """A well-formed generation request, as the fault plan sees it.

    number: 1, 2, ... in arrival order over both generation endpoints (GET requests and rejected
    requests are not numbered, so health checks do not shift a plan). prompt: the chat messages'
    contents, or the completion prompts, joined by newlines.
    """

    number: int
    path: str
    model: str
    n: int
    prompt: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    """Inject `fault` into requests matching every condition given (none given: all requests).

    requests: request numbers, e.g. range(1, 3) or {3}; prompt_contains: a substring of the
    prompt; times: fire at most this often (counted per server), e.g. Rule(Fault.server_error,
    times=2) fails the first two requests and Rule(..., prompt_contains="X", times=2) fails
    problem X twice, then lets it through.
    """

    fault: Fault
    requests: Container[int] | None = None
    prompt_contains: str | None = None
    times: int | None = None

    def matches(self, request: StubRequest) -> bool:
        return (self.requests is None or request.number in self.requests) and (
            self.prompt_contains is None or self.prompt_contains in request.prompt
        )


FaultPlan = Callable[[StubRequest], Fault | None]
"""Decides each generation request's fault (None: answer normally). Called on the server's thread,
in arrival order, so a plan that keeps state is deterministic for a client that sends in order."""


def _rules_plan(rules: Sequence[Rule]) -> FaultPlan:
    fired = [0] * len(rules)

    def plan(request: StubRequest) -> Fault | None:
        for position, rule in enumerate(rules):
            if (rule.times is None or fired[position] < rule.times) and rule.matches(request):
                fired[position] += 1
                return rule.fault
        return None

    return plan


# --- HTTP ------------------------------------------------------------------------------------------

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
MAX_N = 128  # OpenAI's own limit
LINGER = 2.0  # seconds a rejected connection is drained before it is closed

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    505: b"HTTP Version Not Supported",
}
_KEEP = b""
_CLOSE = b"connection: close\r\n"
_KEEP_10 = b"connection: keep-alive\r\n"  # HTTP/1.0 closes unless told otherwise
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEALTH_BODY = b'{"status":"ok"}'
# Cut off inside a string, as a response truncated by a failing proxy would be.
_INVALID_JSON = b'{"id":"chatcmpl-stub","object":"chat.completion","choices":[{"index":0,"message":{"role":"assist'

_CHAT, _COMPLETIONS, _MODELS, _HEALTH = range(4)
_ROUTES = {
    "/v1/chat/completions": (_CHAT, b"POST"),
    "/v1/completions": (_COMPLETIONS, b"POST"),
    "/v1/models": (_MODELS, b"GET"),
    "/health": (_HEALTH, b"GET"),
}


def _response(status: int, body: bytes, connection: bytes = _KEEP, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s%s\r\n%s" % (
        status,
        _REASONS[status],
        len(body),
        connection,
        extra,
        body,
    )


def _error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _tokens(text: str) -> int:
    # A rough count (about four characters a token): enough for usage fields to add up.
    return (len(text) + 3) // 4


class _Head:
    __slots__ = ("connection", "expect_continue", "length", "method", "path")

    def __init__(self, method: bytes, path: str, length: int, connection: bytes, expect_continue: bool) -> None:
        self.method, self.path, self.length = method, path, length
        self.connection, self.expect_continue = connection, expect_continue


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse_head(head: bytes) -> _Head:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        connection = _KEEP
    elif version == b"HTTP/1.0":
        connection = _CLOSE
    else:
        raise _BadRequest(505, "only HTTP/1.1 and HTTP/1.0 are served")
    length: int | None = None
    expect_continue = chunked = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise _BadRequest(400, "malformed header line")
        name = name.strip().lower()
        if name == b"content-length":
            digits = value.strip()
            if not digits.isdigit() or (length is not None and int(digits) != length):
                raise _BadRequest(400, "invalid or conflicting Content-Length")
            length = int(digits)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                connection = _CLOSE
            elif b"keep-alive" in tokens and version == b"HTTP/1.0":
                connection = _KEEP_10
        elif name == b"expect":
            expect_continue = value.strip().lower() == b"100-continue"
    if chunked:
        raise _BadRequest(411, "Transfer-Encoding request bodies are not supported; send a Content-Length")
    if length is None:
        if method == b"POST":
            raise _BadRequest(411, "a POST needs a Content-Length")
        length = 0
    if length > MAX_BODY:
        raise _BadRequest(413, f"request body over {MAX_BODY} bytes")
    return _Head(method, target.partition(b"?")[0].decode("latin-1"), length, connection, expect_continue)


class _Connection(asyncio.Protocol):
    """One client connection: splits the byte stream into requests and answers them in order."""

    __slots__ = ("_buffer", "_continued", "_discarding", "_pending", "_server", "_transport")

    def __init__(self, server: StubServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._pending: _Head | None = None  # a parsed head whose body has not all arrived
        self._continued = False
        self._discarding = False  # hung or rejected: what the client still sends is read and dropped
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._closed(self)

    # A client that sends without reading would otherwise grow our write buffer without bound.
    def pause_writing(self) -> None:
        assert self._transport is not None
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        assert self._transport is not None
        self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if self._discarding:
            return
        buffer = self._buffer
        buffer += data
        while buffer or self._pending is not None:
            head = self._pending
            if head is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        self._reject(431, "request head too large")
                    return
                try:
                    head = _parse_head(bytes(buffer[:end]))
                except _BadRequest as error:
                    self._reject(error.status, str(error))
                    return
                del buffer[: end + 4]
                self._pending, self._continued = head, False
            if len(buffer) < head.length:
                if head.expect_continue and not self._continued:
                    self._continued = True
                    transport.write(_CONTINUE)
                return
            body = bytes(buffer[: head.length])
            del buffer[: head.length]
            self._pending = None
            answer = self._server._answer(head, body)
            if answer is Fault.hang:
                # Keep the socket open and answer nothing more: the client's own timeout ends it.
                self._discarding = True
                buffer.clear()
                return
            if answer is Fault.disconnect:
                transport.abort()
                return
            assert isinstance(answer, bytes)
            transport.write(answer)
            if head.connection is _CLOSE:
                transport.close()
                return

    def _reject(self, status: int, message: str) -> None:
        # The stream cannot be resynchronised after a framing error, so the connection ends here.
        # Closing outright while the client is still sending (a chunked body) would make the
        # kernel answer with a reset, which can destroy the response before the client reads it;
        # so half-close, drop what still arrives, and close for good a moment later.
        transport = self._transport
        assert transport is not None
        self._server.rejected += 1
        self._discarding = True
        self._buffer.clear()
        transport.write(_response(status, _error(message), _CLOSE))
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, transport.close)


# --- The server ------------------------------------------------------------------------------------


class StubServer:
    """An OpenAI-compatible teacher on a local port, served by an asyncio loop in a background
    thread (start/stop, or a `with` block) or in the calling thread (serve_forever).

    reply: text of each choice (cot_reply, program_reply, fixed(text), by_prompt(mapping) or any
    Reply). honour_n: answer n choices; False answers one whatever n is, as `transformers serve`.
    faults: a list of Rules (first matching rule wins) or a FaultPlan. retry_after: seconds sent
    with 429 answers. model: the id listed by GET /v1/models (answers echo the request's model).
    keep_requests: remember every StubRequest in `.received` (tests; memory grows with requests).

    Counters, updated on the server's thread before each answer is written: requests (per path,
    every request whose head parsed), faults (per Fault injected), generations (numbered
    requests), accepted (connections ever opened), rejected (framing errors). Exceptions raised by
    the reply or the fault plan answer 500, are kept in `.errors` and re-raised by the `with`.
    """

    def __init__(
        self,
        reply: Reply = cot_reply,
        *,
        honour_n: bool = True,
        faults: Sequence[Rule] | FaultPlan | None = None,
        retry_after: float = 1.0,
        model: str = "stub-teacher",
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = False,
    ) -> None:
        self.reply = reply
        self.honour_n = honour_n
        if faults is None:
            self._plan: FaultPlan | None = None
        elif callable(faults):
            self._plan = faults
        else:
            self._plan = _rules_plan(list(faults))
        self.host, self.port = host, port
        self.keep_requests = keep_requests
        self.requests: Counter[str] = Counter()
        self.faults: Counter[Fault] = Counter()
        self.generations = self.accepted = self.rejected = 0
        self.received: list[StubRequest] = []
        self.errors: list[Exception] = []
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

        # Everything that does not depend on the request is encoded once.
        self._models_body = orjson.dumps(
            {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "stub"}]}
        )
        self._models = _response(200, self._models_body)
        self._health = _response(200, _HEALTH_BODY)
        self._server_error = orjson.dumps(
            {"error": {"message": "injected by the stub teacher", "type": "server_error", "param": None, "code": None}}
        )
        self._rate_limited = orjson.dumps(
            {
                "error": {
                    "message": "injected by the stub teacher",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            }
        )
        # Retry-After is whole seconds in RFC 9110; a fraction is sent as such (OpenAI's client reads
        # floats) and retry-after-ms is exact, so tests can ask for short waits.
        seconds = int(retry_after) if float(retry_after).is_integer() else retry_after
        self._retry_headers = b"retry-after: %s\r\nretry-after-ms: %d\r\n" % (
            str(seconds).encode(),
            math.ceil(retry_after * 1000),
        )

    # -- lifecycle --

    @property
    def url(self) -> str:
        """The base URL OpenAI clients take, e.g. http://127.0.0.1:40123/v1."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self) -> StubServer:
        """Listen (the port is bound when this returns) and serve from a daemon thread."""
        loop = self._open()
        self._thread = threading.Thread(target=self._run, args=(loop,), name="stub-teacher", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[str], None] | None = None) -> None:
        """Serve from the calling thread until stop(), SIGTERM or SIGINT; `ready` gets the URL."""
        loop = self._open()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, loop.stop)
        if ready is not None:
            ready(self.url)
        self._run(loop)

    def stop(self) -> None:
        """Close the listener and every connection (hung ones included); safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.stop()
        if kind is None and self.errors:
            raise RuntimeError("the stub teacher's reply or fault plan raised") from self.errors[0]

    def _open(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            raise RuntimeError("a StubServer starts once; make a new one")
        loop = self._loop = asyncio.new_event_loop()
        # Bound here rather than on the loop's thread, so start() raises a bind error itself and
        # the port (for port=0) is known before it returns.
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.create_server((self.host, self.port), family=family, backlog=1024)
            self.port = sock.getsockname()[1]
            self._server = loop.run_until_complete(loop.create_server(lambda: _Connection(self), sock=sock))
        except BaseException:
            loop.close()
            raise
        return loop

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_forever()
        finally:
            assert self._server is not None
            self._server.close()
            for connection in list(self._connections):
                connection.abort()
            loop.run_until_complete(self._server.wait_closed())
            loop.run_until_complete(asyncio.sleep(0))  # lets the aborted transports report connection_lost
            loop.close()

    def _opened(self, connection: _Connection) -> None:
        self.accepted += 1
        self._connections.add(connection)

    def _closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    # -- answers --

    def _answer(self, head: _Head, body: bytes) -> bytes | Fault:
        """The full HTTP response for one request, or Fault.hang / Fault.disconnect."""
        path = head.path
        self.requests[path] += 1
        route = _ROUTES.get(path)
        if route is None:
            return _response(404, _error(f"no route {path}", code="not_found"), head.connection)
        kind, method = route
        if head.method != method:
            allow = b"allow: %s\r\n" % method
            return _response(405, _error(f"{path} takes {method.decode()}"), head.connection, allow)
        if kind == _HEALTH:
            return self._health if head.connection is _KEEP else _response(200, _HEALTH_BODY, head.connection)
        if kind == _MODELS:
            return self._models if head.connection is _KEEP else _response(200, self._models_body, head.connection)
        try:
            model, n, prompts, document = _parse_generation(body, kind == _CHAT)
        except _BadRequest as error:
            return _response(error.status, _error(str(error)), head.connection)
        self.generations += 1
        request = StubRequest(self.generations, path, model, n, "\n".join(prompts), document)
        if self.keep_requests:
            self.received.append(request)
        try:
            fault = self._plan(request) if self._plan is not None else None
            completion = None
            if fault is None or fault is Fault.missing_choices:
                completion = self._completion(request, prompts, kind == _CHAT)
        except Exception as error:
            self.errors.append(error)
            message = f"the stub teacher's reply or fault plan raised {error!r}"
            return _response(500, _error(message, "server_error"), head.connection)
        if fault is None:
            return _response(200, orjson.dumps(completion), head.connection)
        self.faults[fault] += 1
        if fault is Fault.server_error:
            return _response(500, self._server_error, head.connection)
        if fault is Fault.rate_limited:
            return _response(429, self._rate_limited, head.connection, self._retry_headers)
        if fault is Fault.invalid_json:
            return _response(200, _INVALID_JSON, head.connection)
        if fault is Fault.missing_choices:
            assert completion is not None
            del completion["choices"]
            return _response(200, orjson.dumps(completion), head.connection)
        return fault

    def _completion(self, request: StubRequest, prompts: Sequence[str], chat: bool) -> dict[str, Any]:
        reply = self.reply
        n = request.n if self.honour_n else 1
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for prompt in prompts:
            for index in range(n):
                text = reply(prompt, index)
                completion_tokens += _tokens(text)
                if chat:
                    choices.append(
                        {
                            "index": len(choices),
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    )
                else:
                    choices.append({"index": len(choices), "text": text, "logprobs": None, "finish_reason": "stop"})
        prompt_tokens = _tokens(request.prompt)
        return {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-stub-{request.number}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _parse_generation(body: bytes, chat: bool) -> tuple[str, int, list[str], dict[str, Any]]:
    """model, n, prompts and the whole body of a generation request, or a 400 naming what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _BadRequest(400, f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise _BadRequest(400, "the body must be a JSON object")
    model = document.get("model")
    if not isinstance(model, str):
        raise _BadRequest(400, "model must be a string")
    n = document.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise _BadRequest(400, f"n must be an integer from 1 to {MAX_N}")
    if document.get("stream"):
        raise _BadRequest(400, "the stub teacher does not stream")
    if chat:
        messages = document.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest(400, "messages must be a non-empty list")
        contents = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):  # content parts: only the text ones carry prompt text
                content = "".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
            if not isinstance(content, str):
                raise _BadRequest(400, "each message needs a content string or content parts")
            contents.append(content)
        prompts = ["\n".join(contents)]
    else:
        prompt = document.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = prompt
        else:
            raise _BadRequest(400, "prompt must be a string or a non-empty list of strings")
    return model, n, prompts, document


# --- As a process ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.stub_server",
        description="A zero-latency OpenAI-compatible teacher, for benchmarks. Serves until killed.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see --print-url)")
    parser.add_argument("--mode", choices=sorted(REPLY_MODES), default="cot", help="what every choice says")
    parser.add_argument("--ignore-n", action="store_true", help="answer one choice whatever n is")
    parser.add_argument("--model", default="stub-teacher", help="the id listed by GET /v1/models")
    parser.add_argument("--print-url", action="store_true", help="print the base URL on stdout once listening")
    args = parser.parse_args(argv)
    server = StubServer(
        REPLY_MODES[args.mode], honour_n=not args.ignore_n, model=args.model, host=args.host, port=args.port
    )

    def ready(url: str) -> None:
        # The URL line is what a parent process waits for, so it goes out before the first request.
        stream = sys.stdout if args.print_url else sys.stderr
        stream.write(url + "\n" if args.print_url else f"stub teacher serving at {url}\n")
        stream.flush()

    server.serve_forever(ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
