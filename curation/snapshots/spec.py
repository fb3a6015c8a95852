"""A snapshot's spec: the declarative selection a version is built from, stored whole.

Every field is optional; the default selects every rationale whose current label is `correct`
into a training snapshot, one per identical text per problem. Fields (JSON/YAML keys as here):

- `purpose`: `training` (default) or `evaluation` (every problem must come from an evaluation split);
- `verdict`: the label a rationale must have (`correct` by default; `any` for all, labelled or not);
  `verifier` and `verifier_version` name which labels count (default: the rationale's current
  label, its most recent);
- `tasks`, `splits`, `runs` (synthesis run ids), `teachers` (model names), `templates` (names),
  `origins` (teacher, reference, student, refinement), `kinds` (cot, program): lists, each
  matching any of its values;
- `max_per_problem`: at most K rationales per problem, the first K in the canonical order
  (hashing.py: by content, salted with `seed`), so the choice is the same on any database;
- `dedupe`: `exact` (default: identical texts after whitespace normalisation, per problem),
  `near` (also near-identical ones: Jaccard similarity of word 3-gram sets at least
  `near_threshold`, default 0.9, against an already kept rationale of the problem), or `none`;
- `min_chars`, `max_chars`: bounds on the rationale's length in characters;
- `where`: a SQL condition over the columns of docs/sql.md's "snapshot candidates" (for
  anything else);
- `drop_contaminated`: a training snapshot that would hold an evaluation question is refused;
  with this, such problems are left out instead and listed in the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curation.errors import CurationError, InputError
from curation.models import RationaleKind, RationaleOrigin, SnapshotKind, Verdict

Dedupe = Literal["none", "exact", "near"]


class SnapshotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: SnapshotKind = SnapshotKind.training
    verdict: str = "correct"
    verifier: str | None = None
    verifier_version: str | None = None
    tasks: list[str] | None = None
    splits: list[str] | None = None
    runs: list[int] | None = None
    teachers: list[str] | None = None
    templates: list[str] | None = None
    origins: list[RationaleOrigin] | None = None
    kinds: list[RationaleKind] | None = None
    max_per_problem: int | None = Field(default=None, ge=1)
    seed: int = 0
    dedupe: Dedupe = "exact"
    near_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=1)
    where: str | None = None
    drop_contaminated: bool = False

    @field_validator("verdict")
    @classmethod
    def _known_verdict(cls, value: str) -> str:
        if value != "any" and value not in {v.value for v in Verdict}:
            raise ValueError(f"verdict must be any or one of {', '.join(v.value for v in Verdict)}")
        return value

    @field_validator("tasks", "splits", "teachers", "templates", "runs", "origins", "kinds")
    @classmethod
    def _not_empty(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("an empty list selects nothing: leave the field out to select every value")
        return sorted(set(value), key=str) if value is not None else None

    def canonical(self) -> dict[str, Any]:
        """The spec as stored and hashed: every field, defaults included, lists sorted."""
        canonical: dict[str, Any] = json.loads(self.model_dump_json())
        return canonical


def load_spec(path: Path) -> dict[str, Any]:
    """A spec file: JSON, or YAML (.yaml, .yml)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(str(path), f"cannot read the spec: {error.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(str(path), f"malformed YAML: {error}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(str(path), f"malformed JSON: {error}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "a spec is a mapping of fields")
    return data


def parse_spec(data: dict[str, Any] | SnapshotSpec) -> SnapshotSpec:
    if isinstance(data, SnapshotSpec):
        return data
    try:
        return SnapshotSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in error.errors())
        raise CurationError(f"invalid snapshot spec: {problems}") from None
