"""Exporting a snapshot version in the formats students are trained on: the contract between
the curation side and the trainer (which reads only what this writes).

`export_snapshot(session, "NAME@N", fmt, out_dir, file_format="jsonl" | "parquet", tokenizer=None)`
writes `out_dir/<split>.<jsonl|parquet>` (one file per split among the members, rows in member
order) and `out_dir/manifest.json`, and returns the manifest:
``{"snapshot": "NAME@N", "snapshot_hash", "kind", "format", "file_format", "tokenizer",
"row_group_size", "layout", "files": [{"path", "split", "sha256", "rows", "bytes"}], "rows",
"exported_at", "code_version"}``. The file hashes are recorded, not the snapshot's identity
(Parquet bytes vary with the writer's version); the snapshot hash is.

Formats (student_prompt.py defines every string):
- `ftcot`: Fine-tune-CoT, CoT members only: `prompt` ``{question} ###``, `completion`
  `` {rationale} --> {answer} END``;
- `pad`: PaD, program members only: `prompt` the question and a newline, `completion` the program
  without docstrings;
- `trl-prompt-completion`: TRL's prompt/completion (standard, not conversational): each member
  in its kind's format above;
- `repair`: programs only, as `pad`, except that a refinement member is a repair example:
  `prompt` the repair prompt (the question, its parent's faulty program, the feedback the
  refinement was built from, the instruction; student_prompt.repair_prompt), `completion` the
  corrected program; its rows also carry `parent_rationale_id` and `refinement_round` (null
  for the other members);
- `trl-messages`: TRL's conversational `messages`, a user turn (the question) and an assistant
  turn (``{rationale} --> {answer}`` or the program);
- `tokenized`: for a named tokenizer, `input_ids` (BOS if the tokenizer has one and adds it, the
  prompt's tokens, the completion's, EOS), `labels` (-100 on BOS and prompt tokens), `length`:
  prompt and completion are tokenized apart, so the boundary is exact.
Every row carries `rationale_id`, `generation_id`, `synthesis_run_id` (null for rationales with
no generation), `problem_id`, `position`, `task`, `split`, `kind`, `origin` and `answer` (the
problem's gold answer, as Fine-tune-CoT's completions use).

Writing: into a temporary directory beside `out_dir`, each file under a temporary name renamed
when complete, then the directory renamed to `out_dir` (which must not exist, or be empty): a
crash at any point leaves nothing under the final name. Rows stream from the database
(`yield_per`) and are written as they come; Parquet through pyarrow's ParquetWriter in row
groups of `row_group_size` rows, so memory holds one row group, whatever the snapshot's size.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from curation import student_prompt
from curation.errors import CurationError
from curation.models import Rationale, RationaleKind, Snapshot, SnapshotMember
from curation.snapshots.create import resolve_snapshot
from curation.snapshots.manifest import code_version

FORMATS = ("ftcot", "pad", "repair", "trl-prompt-completion", "trl-messages", "tokenized")
FILE_FORMATS = ("jsonl", "parquet")
DEFAULT_ROW_GROUP = 10_000
READ_BATCH = 2_000
IGNORE_INDEX = -100
_ONLY_KIND = {"ftcot": RationaleKind.cot, "pad": RationaleKind.program, "repair": RationaleKind.program}

ID_FIELDS = ("rationale_id", "generation_id", "synthesis_run_id", "problem_id", "position")
TEXT_FIELDS = ("task", "split", "kind", "origin", "answer")


@dataclass
class ExportedFile:
    path: str
    split: str
    sha256: str
    rows: int
    bytes: int


@dataclass
class ExportManifest:
    snapshot: str
    snapshot_hash: str
    kind: str
    format: str
    file_format: str
    tokenizer: dict[str, Any] | None
    row_group_size: int | None
    layout: dict[str, Any]
    files: list[ExportedFile] = field(default_factory=list)
    rows: int = 0
    exported_at: str = ""
    code_version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Member(NamedTuple):
    position: int
    rationale_id: int
    generation_id: int | None
    synthesis_run_id: int | None
    problem_id: int
    task: str
    split: str
    kind: str
    origin: str
    body: str
    question: str
    choices: Any
    answer: str
    parent_id: int | None = None
    parent_body: str | None = None
    feedback: str | None = None
    refinement_round: int | None = None


# Core SQL, not the ORM: rows come back as the driver gives them (an export is a loop over
# millions of rows, and the ORM's per-row work would be most of its cost).
_MEMBERS = text(
    """
SELECT sm.position, sm.rationale_id, ra.generation_id, g.synthesis_run_id, sm.problem_id, t.name, p.split,
       ra.kind, ra.origin, ra.body, p.question, p.choices, p.gold_answer,
       ra.parent_id, parent.body, ra.feedback, ra.refinement_round
FROM snapshot_member sm
JOIN rationale ra ON ra.id = sm.rationale_id
LEFT JOIN rationale parent ON parent.id = ra.parent_id
JOIN problem p ON p.id = sm.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.id = ra.generation_id
WHERE sm.snapshot_id = :snapshot_id
ORDER BY sm.position"""
)


def _members(session: Session, snapshot: Snapshot) -> Iterator[_Member]:
    statement = _MEMBERS.execution_options(yield_per=READ_BATCH)  # the statement's option, not the connection's
    for row in session.connection().execute(statement, {"snapshot_id": snapshot.id}):
        position, rid, gid, run, pid, task, split, kind, origin, body, question, choices, gold, *repair = row
        if isinstance(choices, str):  # SQLite hands JSON back as text
            choices = orjson.loads(choices)
        yield _Member(position, rid, gid, run, pid, task, split, kind, origin, body, question, choices, gold, *repair)


# --- Rows per format ---------------------------------------------------------------------------


def _ids(m: _Member) -> dict[str, Any]:
    return {
        "rationale_id": m.rationale_id,
        "generation_id": m.generation_id,
        "synthesis_run_id": m.synthesis_run_id,
        "problem_id": m.problem_id,
        "position": m.position,
        "task": m.task,
        "split": m.split,
        "kind": m.kind,
        "origin": m.origin,
        "answer": m.answer,
    }


def _text_row(m: _Member) -> dict[str, Any]:
    return {
        "prompt": student_prompt.student_prompt(m.kind, m.question, m.choices),
        "completion": student_prompt.student_completion(m.kind, m.body, m.answer),
        **_ids(m),
    }


def _repair_row(m: _Member) -> dict[str, Any]:
    if m.origin == "refinement" and m.parent_body is not None:
        prompt = student_prompt.repair_prompt(m.question, m.choices, m.parent_body, m.feedback or "")
    else:
        prompt = student_prompt.student_prompt(m.kind, m.question, m.choices)
    return {
        "prompt": prompt,
        "completion": student_prompt.pad_completion(m.body),
        **_ids(m),
        "parent_rationale_id": m.parent_id,
        "refinement_round": m.refinement_round,
    }


def _messages_row(m: _Member) -> dict[str, Any]:
    return {"messages": student_prompt.chat_messages(m.kind, m.question, m.choices, m.body, m.answer), **_ids(m)}


class _Tokenize:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.bos = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
        if tokenizer.eos_token_id is None:
            raise CurationError("the tokenizer has no EOS token: a student would not learn to stop")
        self.eos = [tokenizer.eos_token_id]

    def __call__(self, m: _Member) -> dict[str, Any]:
        text = student_prompt.student_prompt(m.kind, m.question, m.choices)
        prompt = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        text = student_prompt.student_completion(m.kind, m.body, m.answer)
        completion = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids = self.bos + prompt + completion + self.eos
        labels = [IGNORE_INDEX] * (len(self.bos) + len(prompt)) + completion + self.eos
        return {"input_ids": input_ids, "labels": labels, "length": len(input_ids), **_ids(m)}


def _adds_bos(tokenizer: Any) -> bool:
    if tokenizer.bos_token_id is None:
        return False
    probe = tokenizer("a")["input_ids"]
    return bool(probe) and probe[0] == tokenizer.bos_token_id


def load_tokenizer(name_or_path: str) -> Any:
    """A tokenizer from a local folder (or the hub's cache when online)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise CurationError(f"cannot load tokenizer {name_or_path!r}: {str(error).splitlines()[0]}") from None


def _tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    return {
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id if _adds_bos(tokenizer) else None,
        "eos_token_id": tokenizer.eos_token_id,
    }


# --- Writers -----------------------------------------------------------------------------------


def _arrow_schema(fmt: str) -> Any:
    import pyarrow as pa

    ids = [
        pa.field("rationale_id", pa.int64(), nullable=False),
        pa.field("generation_id", pa.int64()),
        pa.field("synthesis_run_id", pa.int64()),
        pa.field("problem_id", pa.int64(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        *(pa.field(name, pa.string(), nullable=False) for name in TEXT_FIELDS),
    ]
    if fmt == "tokenized":
        head = [
            pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
            pa.field("labels", pa.list_(pa.int32()), nullable=False),
            pa.field("length", pa.int32(), nullable=False),
        ]
    elif fmt == "trl-messages":
        message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
        head = [pa.field("messages", pa.list_(message), nullable=False)]
    else:
        head = [pa.field("prompt", pa.string(), nullable=False), pa.field("completion", pa.string(), nullable=False)]
    if fmt == "repair":
        ids += [pa.field("parent_rationale_id", pa.int64()), pa.field("refinement_round", pa.int64())]
    return pa.schema(head + ids)


class _JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] = path.open("wb", buffering=1 << 20)
        self.digest = hashlib.sha256()
        self.rows = 0
        self.pending: list[bytes] = []

    def write(self, row: dict[str, Any]) -> None:
        self.pending.append(orjson.dumps(row))
        self.rows += 1
        if len(self.pending) >= READ_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            data = b"\n".join(self.pending) + b"\n"
            self.digest.update(data)
            self.handle.write(data)
            self.pending = []

    def close(self) -> str:
        self._flush()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return self.digest.hexdigest()


class _ParquetWriter:
    def __init__(self, path: Path, schema: Any, row_group_size: int) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema, self.row_group_size = path, schema, row_group_size
        self.writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.rows = 0
        self.buffered = 0

    def write(self, row: dict[str, Any]) -> None:
        for name, column in self.columns.items():
            column.append(row[name])
        self.rows += 1
        self.buffered += 1
        if self.buffered >= self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.buffered:
            table = pa.Table.from_pydict(self.columns, schema=self.schema)
            self.writer.write_table(table, row_group_size=self.row_group_size)
            self.columns = {name: [] for name in self.schema.names}
            self.buffered = 0

    def close(self) -> str:
        self._flush()
        self.writer.close()
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            os.fsync(handle.fileno())
        return digest.hexdigest()


# --- The export ----------------------------------------------------------------------------------


LAYOUT: dict[str, dict[str, Any]] = {
    "ftcot": {"prompt": "{question} ###", "completion": " {rationale} --> {answer} END"},
    "pad": {"prompt": "{question}\\n", "completion": "{program without docstrings}"},
    "repair": {
        "prompt": "as pad; a refinement: {question}\\n# Faulty program:\\n{parent program}\\n# Feedback: {feedback}\\n"
        "# Find the wrong step, say why, and give the corrected program.\\n# Corrected program:\\n",
        "completion": "{program without docstrings}",
    },
    "trl-prompt-completion": {"cot": "as ftcot", "program": "as pad"},
    "trl-messages": {
        "messages": [
            {"role": "user", "content": "{question}"},
            {"role": "assistant", "content": "cot: {rationale} --> {answer}; program: {program}"},
        ]
    },
    "tokenized": {
        "input_ids": "[bos] + prompt + completion + [eos] (prompt, completion as trl-prompt-completion)",
        "labels": "-100 on bos and prompt tokens, else input_ids",
    },
}


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CurationError(f"{out_dir} exists and is not an empty directory: export into a new one")


def export_snapshot(
    session: Session,
    snapshot_ref: str | Snapshot,
    fmt: str,
    out_dir: Path,
    *,
    file_format: str = "jsonl",
    tokenizer: Any = None,
    row_group_size: int = DEFAULT_ROW_GROUP,
    progress: Callable[[int], None] | None = None,
) -> ExportManifest:
    """Write the snapshot's members in `fmt` under `out_dir` (module docstring); the manifest."""
    if fmt not in FORMATS:
        raise CurationError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if file_format not in FILE_FORMATS:
        raise CurationError(f"unknown file format {file_format!r}; known: {', '.join(FILE_FORMATS)}")
    if row_group_size < 1:
        raise CurationError("the row group size must be at least 1")
    if (fmt == "tokenized") != (tokenizer is not None):
        raise CurationError("the tokenized format needs a tokenizer, and only it takes one")
    if isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer)
    snapshot = resolve_snapshot(session, snapshot_ref)
    _check_out_dir(out_dir)
    only = _ONLY_KIND.get(fmt)
    if only is not None:
        other = session.execute(
            select(Rationale.id)
            .join(SnapshotMember, SnapshotMember.rationale_id == Rationale.id)
            .where(SnapshotMember.snapshot_id == snapshot.id, Rationale.kind != only)
            .limit(1)
        ).first()
        if other is not None:
            raise CurationError(
                f"the {fmt} format takes {only.value} rationales only; {snapshot.ref} also holds others "
                f"(rationale {other[0]}): use trl-prompt-completion, or a snapshot with --kind {only.value}"
            )
    make_row: Callable[[_Member], dict[str, Any]]
    if fmt == "tokenized":
        make_row = _Tokenize(tokenizer)
    elif fmt == "trl-messages":
        make_row = _messages_row
    elif fmt == "repair":
        make_row = _repair_row
    else:
        make_row = _text_row
    manifest = ExportManifest(
        snapshot=snapshot.ref,
        snapshot_hash=snapshot.content_sha256,
        kind=str(snapshot.kind),
        format=fmt,
        file_format=file_format,
        tokenizer=_tokenizer_info(tokenizer) if tokenizer is not None else None,
        row_group_size=row_group_size if file_format == "parquet" else None,
        layout=LAYOUT[fmt],
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        writers: dict[str, _JsonlWriter | _ParquetWriter] = {}
        schema = _arrow_schema(fmt) if file_format == "parquet" else None
        for member in _members(session, snapshot):
            writer = writers.get(member.split)
            if writer is None:
                part = staging / f"{member.split}.{file_format}.tmp"
                writer = _ParquetWriter(part, schema, row_group_size) if schema is not None else _JsonlWriter(part)
                writers[member.split] = writer
            writer.write(make_row(member))
            manifest.rows += 1
            if progress is not None and manifest.rows % READ_BATCH == 0:
                progress(READ_BATCH)
        for split, writer in sorted(writers.items()):
            sha256 = writer.close()
            final = staging / f"{split}.{file_format}"
            os.replace(writer.path, final)
            manifest.files.append(ExportedFile(final.name, split, sha256, writer.rows, final.stat().st_size))
        manifest.exported_at = datetime.now(UTC).isoformat(timespec="seconds")
        manifest.code_version = code_version()
        (staging / "manifest.json.tmp").write_bytes(orjson.dumps(manifest.as_dict(), option=orjson.OPT_INDENT_2))
        os.replace(staging / "manifest.json.tmp", staging / "manifest.json")
        _fsync_dir(staging)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above): rename replaces only a missing name
        os.rename(staging, out_dir)
        _fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_export_manifest(out_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((out_dir / "manifest.json").read_bytes())
    return data
