"""Building a teacher from its row in the `model` table and a run's connection options.

The model row says which model it is (backend, name, revision); how to reach it (base_url,
concurrency, timeouts, device) belongs to each run, in `synthesis_run.params["teacher"]`: the same
model served at two addresses is one model with two runs' worth of options. Never how to
authenticate: an API key is named by the environment variable that holds it (`api_key_env`), so
no secret is ever written to the database.
"""

from __future__ import annotations

from typing import Any

from curation.errors import CurationError
from curation.models import LanguageModel
from workers.teachers.base import Teacher
from workers.teachers.embedded_model import prepare_embedded_model

EMBEDDED = "embedded"
OPENAI = "openai"
TRANSFORMERS = "transformers"
BACKENDS = (EMBEDDED, OPENAI, TRANSFORMERS)

_HTTP_OPTIONS = {
    "api",
    "api_key_env",
    "concurrency",
    "request_timeout",
    "max_attempts",
    "backoff_base",
    "backoff_max",
    "honours_n",
    "continue_final_message",
}
_LOCAL_OPTIONS = {"device", "batch_size", "chat", "dtype"}


def build_teacher(model: LanguageModel, options: dict[str, Any] | None = None) -> Teacher:
    """options: the run's connection options; None falls back to those stored on the model row
    (where runs created before they moved to the run kept them)."""
    parameters: dict[str, Any] = dict(options if options is not None else (model.parameters or {}))
    # Each backend's client is imported when a run uses it: aiohttp and torch take a while to load.
    if model.backend == OPENAI:
        from workers.teachers.openai_http import HttpTeacherConfig, OpenAICompatibleTeacher

        base_url = parameters.pop("base_url", None)
        if not base_url:
            raise CurationError(f"teacher {model.name!r} (model #{model.id}) has no base_url")
        options = {k: v for k, v in parameters.items() if k in _HTTP_OPTIONS}
        return OpenAICompatibleTeacher(HttpTeacherConfig(base_url=base_url, model=model.name, **options))
    if model.backend in (TRANSFORMERS, EMBEDDED):
        from workers.teachers.local import LocalTransformersTeacher

        path = model.name
        if model.backend == EMBEDDED:
            path = str(prepare_embedded_model())
        options = {k: v for k, v in parameters.items() if k in _LOCAL_OPTIONS}
        return LocalTransformersTeacher(path, **options)
    raise CurationError(
        f"model #{model.id} ({model.backend}:{model.name}) cannot generate: its outputs were imported, "
        f"or its backend is unknown (known: {', '.join(BACKENDS)})"
    )
