"""How a run names its teacher, before any model row or client exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TeacherSpec:
    """How to reach a teacher: backend ("embedded", "openai", "transformers") and model name or path;
    `parameters` holds the connection options (base_url, api, api_key_env, concurrency, ...), which
    are stored with the run, not the model."""

    backend: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
