"""What tasks share within one process: the database, a sandbox, teachers, where follow-ups go.

Created lazily, after any fork (Celery's prefork children must not share the parent's database
connections or sandbox server), and reused by every task the process runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson

from curation.db.session import Database
from curation.errors import NotFoundError
from curation.models import LanguageModel
from workers.sandbox import Sandbox
from workers.task_contract import Dispatcher
from workers.teachers.base import Teacher
from workers.teachers.registry import build_teacher

TeacherFactory = Callable[[LanguageModel, dict[str, Any] | None], Teacher]
"""Builds a teacher from its model row and a run's connection options (see teachers/registry.py)."""


class Runtime:
    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        *,
        teacher_factory: TeacherFactory | None = None,
        sandbox_in_flight: int | None = None,
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self._teacher_factory = teacher_factory
        self._sandbox_in_flight = sandbox_in_flight
        self._sandboxes: dict[int, Sandbox] = {}
        self._teachers: dict[tuple[int, bytes], Teacher] = {}
        self._lock = threading.Lock()

    def sandbox(self) -> Sandbox:
        """One sandbox server per thread: in embedded mode two execution threads keep the CPU busy,
        one running programs while the other reads and writes the database."""
        thread = threading.get_ident()
        with self._lock:
            if thread not in self._sandboxes:
                self._sandboxes[thread] = Sandbox(in_flight=self._sandbox_in_flight)
            return self._sandboxes[thread]

    def teacher(self, model_id: int, options: dict[str, Any] | None = None) -> Teacher:
        """One teacher per model and connection options per process: a local model is loaded once,
        not once per task, and two runs of one model at different addresses each reach their own."""
        key = (model_id, orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
        with self._lock:
            if key in self._teachers:
                return self._teachers[key]
            with self.db.read() as session:
                model = session.get(LanguageModel, model_id)
                if model is None:
                    raise NotFoundError(f"model {model_id} does not exist")
            if self._teacher_factory is not None:
                teacher = self._teacher_factory(model, options)
            else:
                teacher = build_teacher(model, options)
            self._teachers[key] = teacher
            return teacher

    def close(self) -> None:
        for sandbox in self._sandboxes.values():
            sandbox.close()
        self._sandboxes.clear()
        for teacher in self._teachers.values():
            teacher.close()
        self._teachers.clear()
        self.db.dispose()
