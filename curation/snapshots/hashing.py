"""What a snapshot's hash covers, exactly, so that the same spec over the same data gives the same
hash on SQLite and PostgreSQL.

A member's record is its content and the keys that name it outside any one database: task, split,
source_ref (the problem's id in its source file), question, choices, gold answer, and the
rationale's kind, origin, text, and the verdict (verifier, version) it was chosen for. Database
ids (problem_id, rationale_id, run ids) are not covered: two databases holding the same data give
them different values. They are stored with each member and in every exported row.

Serialisation: JSON with sorted keys, no whitespace, UTF-8, non-ASCII as is (orjson); no floats
occur in a record (answers are stored as normalised text). The member hash is the sha256 of
that. The snapshot hash is the sha256 of the canonical spec (all fields, defaults included, lists
sorted) as one JSON line headed by the hash scheme's name, then each member hash in hex with a
newline, in position order.

Canonical order: problems by question fingerprint, then task, split and source_ref (compared as
bytes: PostgreSQL sorts in the "C" collation), and within a problem its rationales by
sha256(seed, member hash): by content, salted by the spec's seed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

SCHEME = "curation-snapshot-v1"


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def member_record(
    *,
    task: str,
    split: str,
    source_ref: str,
    question: str,
    choices: Any,
    gold_answer: str,
    kind: str,
    origin: str,
    body: str,
    verdict: str | None,
    verifier: str | None,
    verifier_version: str | None,
) -> dict[str, Any]:
    return {
        "task": task,
        "split": split,
        "source_ref": source_ref,
        "question": question,
        "choices": choices,
        "gold_answer": gold_answer,
        "kind": kind,
        "origin": origin,
        "body": body,
        "verdict": verdict,
        "verifier": verifier,
        "verifier_version": verifier_version,
    }


def member_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def order_key(seed: int, member_sha256: str) -> str:
    return hashlib.sha256(f"{seed}:{member_sha256}".encode()).hexdigest()


class SnapshotHasher:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._digest = hashlib.sha256(canonical_json({"scheme": SCHEME, "spec": spec}) + b"\n")

    def add(self, member_sha256: str) -> None:
        self._digest.update(member_sha256.encode() + b"\n")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
