"""Teachers behind an OpenAI-compatible HTTP API: vLLM, SGLang, llama.cpp, OpenAI, `transformers serve`.

Requests run concurrently (at most `concurrency` at once) on an asyncio loop in a helper thread
that lives as long as the teacher, with one pool of keep-alive connections, and each result is
handed to the caller as soon as it arrives, so it can be stored before the next one comes back.
Transient failures (HTTP 429 and 5xx, timeouts, dropped connections, bodies that are not the JSON
the API promises) are retried a bounded number of times with exponential backoff
and full jitter, honouring Retry-After; other client errors (400, 401, 404) fail at once. A request
that still fails is returned as a failed result: the caller records it and the run goes on.

A prompt that continues the teacher's own text (zero-shot-CoT's second stage) is sent over chat as
the user's turn followed by the assistant's unfinished turn, with vLLM's and SGLang's
``continue_final_message: true, add_generation_prompt: false`` so that the model goes on with
that turn instead of answering it. Servers that refuse those fields (OpenAI's own API,
`transformers serve`) are asked through the completions endpoint instead, which is what a run of
a two-stage template uses unless told otherwise; `continue_final_message=False` sends the
assistant turn without the fields.

Several samples of one prompt are asked for with `n` where the server honours it; where it does
not (`transformers serve` ignores `n`), the missing samples are asked for one by one, and the
backend remembers not to ask with `n` again.

The API key is read from the environment variable named in the config, sent as a bearer token,
and never stored, logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from curation.errors import CurationError
from workers.teachers.base import Completion, GenerationRequest, GenerationResult, SamplingParams

_DONE = object()


class _LoopGone(CurationError):
    def __init__(self) -> None:
        super().__init__("the HTTP teacher was closed while generating (its event loop stopped)")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """libuv's loop where there is one: at a thousand requests a second it costs the client about
    a tenth less CPU per request than asyncio's own (bench/orchestration.py)."""
    try:
        import uvloop
    except ImportError:  # no uvloop on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _shutdown(client: aiohttp.ClientSession | None) -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if client is not None:
        await client.close()


def _take(results: queue.Queue[Any], thread: threading.Thread) -> Any:
    """The next item, or a _LoopGone error if the loop's thread has died (close() from another
    thread): a generate() call must not wait forever for results that cannot come."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if not thread.is_alive():
                return _LoopGone()


@dataclass(frozen=True)
class HttpTeacherConfig:
    """base_url: the API root, e.g. http://127.0.0.1:8000/v1. api: "chat" (/chat/completions) or
    "completions" (/completions). api_key_env: name of the environment variable with the key."""

    base_url: str
    model: str
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = None
    concurrency: int = 16
    request_timeout: float = 120.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    honours_n: bool | None = None  # None: ask with n and find out
    continue_final_message: bool = True  # send vLLM's continuation fields with an assistant turn


class TeacherCallError(Exception):
    attempts = 0  # how often the call was made before giving up (set when retries run out)


class TransientTeacherError(TeacherCallError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentTeacherError(TeacherCallError):
    pass


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _Backoff:
    """Full-jitter exponential backoff; a server's Retry-After takes precedence (within the cap)."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientTeacherError) and error.retry_after is not None:
            return min(self.cap, error.retry_after)
        return random.uniform(0, min(self.cap, self.base * 2 ** (state.attempt_number - 1)))


class OpenAICompatibleTeacher:
    def __init__(self, config: HttpTeacherConfig) -> None:
        self.config = config
        self._honours_n = config.honours_n
        self._headers = {"content-type": "application/json"}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise CurationError(f"environment variable {config.api_key_env} (the teacher's API key) is not set")
            self._headers["authorization"] = f"Bearer {key}"
        self._path = "chat/completions" if config.api == "chat" else "completions"  # relative to base_url
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._pid = os.getpid()

    def close(self) -> None:
        """Closes the connections and stops the loop's thread (a later generate() starts them again)."""
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None or thread is None or self._pid != os.getpid():
            return  # nothing started, or it was started in the process this one was forked from
        # Best effort: whatever is in flight is cancelled (a generate() still waiting gets an
        # error), and the connections die with the loop anyway.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_shutdown(client), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[GenerationResult]:
        results: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        loop, thread = self._running_loop()
        stops = (stop,) if cancel is None else (stop, cancel)
        asyncio.run_coroutine_threadsafe(self._run_all(list(requests), params, results, stops), loop)
        item: Any = None
        try:
            while (item := _take(results, thread)) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # The caller stopped early (or failed): cancel what is still in flight, and wait until
            # it has stopped, so that nothing of this call runs on once it has returned.
            stop.set()
            while item is not _DONE and not isinstance(item, _LoopGone):
                item = _take(results, thread)

    def _running_loop(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        """The event loop that all of this teacher's requests run on, in a thread of its own.

        It lives as long as the teacher (until close()), and with it the client and its pool of
        connections: a batch after the first reuses them instead of connecting anew.
        """
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # after a fork, the parent's loop is not ours
                loop = _new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="teacher-http", daemon=True)
                thread.start()
                self._loop, self._thread, self._client, self._pid = loop, thread, None, os.getpid()
                self._semaphore = None
            assert self._thread is not None
            return self._loop, self._thread

    def _session(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        """The client, made on first use on the loop's thread (aiohttp binds it to the running loop)."""
        if self._client is None or self._client.closed or self._semaphore is None:
            timeout = aiohttp.ClientTimeout(
                total=self.config.request_timeout, connect=min(10.0, self.config.request_timeout)
            )
            self._client = aiohttp.ClientSession(
                base_url=self.config.base_url.rstrip("/") + "/",
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.config.concurrency),
                timeout=timeout,
            )
            # One limit for the teacher, however many generate() calls share it at once.
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        return self._client, self._semaphore

    async def _run_all(
        self,
        requests: list[GenerationRequest],
        params: SamplingParams,
        out: queue.Queue[Any],
        stops: tuple[threading.Event, ...],
    ) -> None:
        # aiohttp, not httpx: on these machines its client does ~10x the requests per CPU second,
        # and at a thousand generations a second the client's own cost is what is left to pay.
        try:
            client, semaphore = self._session()

            async def one(request: GenerationRequest) -> None:
                out.put(await self._request(client, semaphore, request, params))

            tasks = [asyncio.create_task(one(r)) for r in requests]
            watcher = asyncio.create_task(self._watch(stops, tasks))
            await asyncio.gather(*tasks, return_exceptions=True)
            watcher.cancel()
            for task in tasks:
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        except asyncio.CancelledError:  # only close() cancels a whole call
            out.put(_LoopGone())
        except BaseException as error:  # surfaced in the caller's thread
            out.put(error)
        finally:
            out.put(_DONE)

    @staticmethod
    async def _watch(stops: tuple[threading.Event, ...], tasks: list[asyncio.Task[None]]) -> None:
        while not any(stop.is_set() for stop in stops):
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()

    async def _request(
        self,
        client: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        request: GenerationRequest,
        params: SamplingParams,
    ) -> GenerationResult:
        started = time.perf_counter()
        completions: list[Completion] = []
        prompt_tokens = completion_tokens = 0
        attempts = 0
        remaining = list(request.samples)
        try:
            if len(remaining) > 1 and self._honours_n is not False:
                # Seeded by the first sample asked for, as each single request is by its own: a
                # resume asking for samples 2-3 does not get the answers samples 0-1 got.
                seed = params.seed + remaining[0] if params.seed is not None else None
                choices, usage, tries = await self._call(
                    client, semaphore, request, params, n=len(remaining), seed=seed
                )
                attempts += tries
                completions.extend(choices[: len(remaining)])
                prompt_tokens += usage[0]
                completion_tokens += usage[1]
                if self._honours_n is None:
                    self._honours_n = len(choices) >= len(remaining)
                remaining = remaining[len(choices) :]
            for sample in remaining:
                seed = params.seed + sample if params.seed is not None else None
                choices, usage, tries = await self._call(client, semaphore, request, params, n=1, seed=seed)
                attempts += tries
                completions.append(choices[0])
                prompt_tokens += usage[0]
                completion_tokens += usage[1]
        except TeacherCallError as error:
            attempts += max(error.attempts, 1)
            return GenerationResult(
                request, completions, prompt_tokens, completion_tokens,
                (time.perf_counter() - started) * 1000, attempts, error=str(error),
            )  # fmt: skip
        return GenerationResult(
            request, completions, prompt_tokens or None, completion_tokens or None,
            (time.perf_counter() - started) * 1000, attempts,
        )  # fmt: skip

    def _body(self, request: GenerationRequest, params: SamplingParams, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "temperature": params.temperature, "n": n}
        if self.config.api == "chat":
            body["messages"] = request.prompt.messages()
            if request.prompt.continues_assistant and self.config.continue_final_message:
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
        else:
            body["prompt"] = request.prompt.text
        for name, value in (("top_p", params.top_p), ("max_tokens", params.max_tokens), ("seed", seed)):
            if value is not None:
                body[name] = value
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    async def _call(
        self,
        client: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        request: GenerationRequest,
        params: SamplingParams,
        *,
        n: int,
        seed: int | None,
    ) -> tuple[list[Completion], tuple[int, int], int]:
        body = orjson.dumps(self._body(request, params, n, seed))
        # The first attempt is made outside the retry machinery, whose bookkeeping costs as much as
        # the request itself at a thousand requests a second; tenacity takes over on a transient
        # failure, counting that attempt as its first, so backoff and the bound are unchanged.
        try:
            async with semaphore:
                choices, usage = await self._post(client, body)
            return choices, usage, 1
        except TransientTeacherError as error:
            first_failure = error
        except TeacherCallError as error:
            error.attempts = 1
            raise
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=_Backoff(self.config.backoff_base, self.config.backoff_max),
            retry=retry_if_exception_type(TransientTeacherError),
            reraise=True,
        )
        made = 1
        try:
            async for attempt in retrying:
                with attempt:
                    made = attempt.retry_state.attempt_number
                    if made == 1:
                        raise first_failure
                    async with semaphore:
                        choices, usage = await self._post(client, body)
                    return choices, usage, made
        except TeacherCallError as error:
            error.attempts = made  # the generation row records how often it was asked
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _post(self, client: aiohttp.ClientSession, body: bytes) -> tuple[list[Completion], tuple[int, int]]:
        try:
            async with client.post(self._path, data=body) as response:
                status, headers = response.status, response.headers
                content = await response.read()
        except TimeoutError:
            raise TransientTeacherError(f"no answer within {self.config.request_timeout:g} s") from None
        except aiohttp.ClientError as error:
            raise TransientTeacherError(f"connection failed: {type(error).__name__}") from None
        if status == 429 or status >= 500:
            raise TransientTeacherError(f"HTTP {status}", _retry_after(headers))
        if status >= 400:
            raise PermanentTeacherError(f"HTTP {status}: {content[:300].decode(errors='replace')}")
        try:
            data = orjson.loads(content)
            choices = data["choices"]
            chat = self.config.api == "chat"
            completions = [
                Completion(c["message"]["content"] if chat else c["text"], c.get("finish_reason")) for c in choices
            ]
            if not completions or not all(isinstance(c.text, str) for c in completions):
                raise ValueError("no text in choices")
            usage = data.get("usage") or {}
            return completions, (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise TransientTeacherError(f"unusable response body ({type(error).__name__})") from None
