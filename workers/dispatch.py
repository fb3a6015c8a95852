"""Sending tasks: to Celery queues when a broker is configured, else to an in-process queue.

Both take the same task names and the same JSON arguments, and both are called only after the
sender's transaction has committed, so the task functions and their database semantics are the
same in embedded and distributed mode.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from workers.runtime import Runtime
from workers.task_contract import Deferred, TaskFunction

log = logging.getLogger(__name__)


class InlineDispatcher:
    """Embedded mode: tasks wait in in-process queues and run in this process when `drain` is called.

    Given `routes` (task -> queue), each queue gets a thread of its own, as it would get workers of
    its own: generation waits on the teacher while the sandbox runs programs and labels are
    written, which on a small machine is most of the throughput. Without routes, tasks run one
    after another in the calling thread (what tests that script an order want).

    Arguments go through JSON as they would on a broker, so a task that only works in-process
    (say, one given an ORM object) fails here too.
    """

    def __init__(
        self,
        tasks: dict[str, TaskFunction],
        routes: dict[str, str] | None = None,
        threads: dict[str, int] | None = None,
    ) -> None:
        self.tasks = tasks
        self.routes = routes
        self.threads = threads or {}
        self.queue: deque[tuple[str, list[Any]]] = deque()  # sequential mode
        self._queues: dict[str, deque[tuple[str, list[Any]]]] = {q: deque() for q in set((routes or {}).values())}
        self._changed = threading.Condition()
        self._running = 0
        self._failure: BaseException | None = None

    def send(self, task: str, *args: Any) -> None:
        if task not in self.tasks:
            raise KeyError(f"unknown task {task!r}")
        message = (task, orjson.loads(orjson.dumps(list(args))))
        if self.routes is None:
            self.queue.append(message)
            return
        with self._changed:
            self._queues[self.routes[task]].append(message)
            self._changed.notify_all()

    def drain(self, runtime: Runtime, after_each: Callable[[str], object] | None = None) -> int:
        """Run queued tasks (and those they queue) until none is left; how many ran."""
        if self.routes is None:
            ran = 0
            while self.queue:
                task, args = self.queue.popleft()
                try:
                    self.tasks[task](runtime, *args)
                except Deferred as deferred:
                    log.info("%s deferred: %s", task, deferred)
                    continue
                ran += 1
                if after_each is not None:
                    after_each(task)
            return ran
        counts = dict.fromkeys(self._queues, 0)
        threads = [
            threading.Thread(target=self._work, args=(name, runtime, after_each, counts), name=f"queue-{name}-{i}")
            for name in self._queues
            for i in range(self.threads.get(name, 1))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return sum(counts.values())

    def _work(
        self, name: str, runtime: Runtime, after_each: Callable[[str], object] | None, counts: dict[str, int]
    ) -> None:
        queue = self._queues[name]
        while True:
            with self._changed:
                # Done when every queue is empty and no task is running (a running task may send more).
                while not queue and self._failure is None and (self._running or any(self._queues.values())):
                    self._changed.wait()
                if self._failure is not None or not queue:
                    self._changed.notify_all()
                    return
                task, args = queue.popleft()
                self._running += 1
            try:
                self.tasks[task](runtime, *args)
                with self._changed:
                    counts[name] += 1
                if after_each is not None:
                    after_each(task)
            except Deferred as deferred:
                log.info("%s deferred: %s", task, deferred)
            except BaseException as error:
                with self._changed:
                    self._failure = self._failure or error
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()


class CeleryDispatcher:
    """Distributed mode: tasks go to their queue on the broker."""

    def __init__(self, app: Any, routes: dict[str, str]) -> None:
        self.app, self.routes = app, routes

    def send(self, task: str, *args: Any) -> None:
        self.app.send_task(task, args=list(args), queue=self.routes[task])
