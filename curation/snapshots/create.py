"""Creating a snapshot version from a spec, and finding one by `NAME@N`.

`create_snapshot` selects the candidates (the "snapshot candidates" columns of docs/sql.md) in
the canonical order (hashing.py), one problem at a time: drops repeated and near-repeated texts,
keeps at most K per problem, applies the contamination guard, and writes the members of a new
version while hashing them, all in the caller's transaction. Then:
- if a version of this name already has that hash, everything written is rolled back (a
  savepoint) and that version is returned with created=False: nothing is written;
- otherwise the version is sealed with its manifest, and from then on the database refuses any
  change to it (curation/db/triggers.py).
Memory holds one problem's candidates and one batch of members at a time, plus the evaluation
index (fingerprints and 8-grams of the evaluation questions).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from curation.errors import CurationError, NotFoundError, first_line
from curation.models import Snapshot, SnapshotKind, SnapshotMember, SplitPurpose
from curation.snapshots import hashing
from curation.snapshots.contamination import ContaminationReport, EvaluationIndex, ngrams, problem_name
from curation.snapshots.manifest import build_manifest
from curation.snapshots.spec import SnapshotSpec, parse_spec
from curation.sql_console import reading_connection

MEMBER_BATCH = 5_000
MAX_NAME_CHARS = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_WORDS = re.compile(r"\w+")

# The columns a spec's `where` may use (documented in docs/sql.md, "snapshot candidates").
CANDIDATES = """
SELECT ra.id AS rationale_id, ra.problem_id, ra.generation_id, g.synthesis_run_id,
       t.name AS task, p.split, sp.purpose AS split_purpose, p.source_ref, p.question, p.choices,
       p.gold_answer, p.content_hash AS question_fingerprint,
       ra.origin, ra.kind, ra.body, ra.answer, LENGTH(ra.body) AS body_chars, ra.parent_id,
       COALESCE(tm.name, m.name) AS teacher, m.name AS model, pt.name AS template,
       pt.version AS template_version, r.temperature, r.samples_per_problem,
       l.id AS label_id, l.verifier, l.verifier_version, l.verdict, l.score
FROM rationale ra
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
JOIN split sp ON sp.task_id = p.task_id AND sp.name = p.split
LEFT JOIN generation g ON g.id = ra.generation_id
LEFT JOIN synthesis_run r ON r.id = g.synthesis_run_id
LEFT JOIN model tm ON tm.id = r.teacher_id
LEFT JOIN model m ON m.id = ra.model_id
LEFT JOIN prompt_template pt ON pt.id = r.template_id
LEFT JOIN (
    SELECT rationale_id, MAX(id) AS label_id FROM label {label_filter} GROUP BY rationale_id
) chosen ON chosen.rationale_id = ra.id
LEFT JOIN label l ON l.id = chosen.label_id"""

_SELECTED = (
    "rationale_id, problem_id, generation_id, synthesis_run_id, task, split, split_purpose, source_ref, "
    "question, choices, gold_answer, question_fingerprint, origin, kind, body, label_id, verifier, "
    "verifier_version, verdict"
)


class _Candidate(NamedTuple):
    rationale_id: int
    problem_id: int
    generation_id: int | None
    synthesis_run_id: int | None
    task: str
    split: str
    split_purpose: str
    source_ref: str
    question: str
    choices: Any
    gold_answer: str
    fingerprint: str
    origin: str
    kind: str
    body: str
    label_id: int | None
    verifier: str | None
    verifier_version: str | None
    verdict: str | None


def candidate_query(session: Session, spec: SnapshotSpec) -> Any:
    """The spec as one SELECT over the candidates, in the canonical problem order."""
    postgres = session.get_bind().dialect.name == "postgresql"
    conditions: list[str] = []
    params: dict[str, Any] = {}
    expanding: list[str] = []
    label_filter = ""
    if spec.verifier is not None or spec.verifier_version is not None:
        parts = []
        if spec.verifier is not None:
            parts.append("verifier = :verifier")
            params["verifier"] = spec.verifier
        if spec.verifier_version is not None:
            parts.append("verifier_version = :verifier_version")
            params["verifier_version"] = spec.verifier_version
        label_filter = "WHERE " + " AND ".join(parts)
    if spec.verdict != "any":
        conditions.append("verdict = :verdict")
        params["verdict"] = spec.verdict
    for field, column in (
        ("tasks", "task"),
        ("splits", "split"),
        ("runs", "synthesis_run_id"),
        ("teachers", "teacher"),
        ("templates", "template"),
        ("origins", "origin"),
        ("kinds", "kind"),
    ):
        values = getattr(spec, field)
        if values is not None:
            conditions.append(f"{column} IN :{field}")
            params[field] = [getattr(v, "value", v) for v in values]
            expanding.append(field)
    if spec.min_chars is not None:
        conditions.append("body_chars >= :min_chars")
        params["min_chars"] = spec.min_chars
    if spec.max_chars is not None:
        conditions.append("body_chars <= :max_chars")
        params["max_chars"] = spec.max_chars
    if spec.where:
        # The user's SQL as written: colons are literal there, not bind parameters.
        conditions.append(f"({spec.where.replace(':', chr(92) + ':')})")
    collate = ' COLLATE "C"' if postgres else ""
    order = ", ".join(f"{c}{collate}" for c in ("question_fingerprint", "task", "split", "source_ref"))
    sql = (
        f"WITH candidate AS ({CANDIDATES.format(label_filter=label_filter)}) "
        f"SELECT {_SELECTED} FROM candidate"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + f" ORDER BY {order}, problem_id, rationale_id"
    )
    statement = text(sql)
    if expanding:
        statement = statement.bindparams(*(bindparam(name, expanding=True) for name in expanding))
    return statement.bindparams(**params)


def _where_snapshot(session: Session, spec: SnapshotSpec, trusted_where: bool) -> str | None:
    """On PostgreSQL, for a spec with a `where` that this system did not write: the id of this
    transaction's snapshot of the data, which the read-only session that runs the spec's SQL then
    reads (None: no such session)."""
    if not spec.where or trusted_where or session.get_bind().dialect.name != "postgresql":
        return None
    # txid_current_if_assigned, not pg_current_xact_id_if_assigned: the latter is PostgreSQL 13+.
    if session.execute(text("SELECT txid_current_if_assigned() IS NOT NULL")).scalar_one():
        raise CurationError(
            "a spec with a where clause is read in a read-only session of its own, on this transaction's view "
            "of the data, and that view cannot hold what this transaction wrote before: create the snapshot "
            "in a transaction that has written nothing yet"
        )
    return str(session.execute(text("SELECT pg_export_snapshot()")).scalar_one())


def _grouped(result: Any) -> Iterator[list[_Candidate]]:
    group: list[_Candidate] = []
    for row in result:
        candidate = _Candidate._make(row)
        if isinstance(candidate.choices, str):  # SQLite hands JSON back as text
            candidate = candidate._replace(choices=orjson.loads(candidate.choices))
        if group and group[0].problem_id != candidate.problem_id:
            yield group
            group = []
        group.append(candidate)
    if group:
        yield group


def _where_failed(spec: SnapshotSpec, error: DBAPIError) -> CurationError:
    return CurationError(f"the spec's where clause ({spec.where!r}) does not run: {first_line(error)}")


def _candidates(
    session: Session, spec: SnapshotSpec, where_snapshot: str | None, sql_url: str | None, sql_timeout_s: float | None
) -> Iterator[list[_Candidate]]:
    """Candidates grouped by problem, in the canonical problem order."""
    # Core rows (no ORM work per row), streamed; the option is the statement's, not the connection's,
    # whose later statements (the savepoint's) must not run through a server-side cursor.
    statement = candidate_query(session, spec).execution_options(yield_per=2_000)
    with ExitStack() as stack:
        connection = session.connection()
        if where_snapshot is not None:
            # The spec's SQL is nobody's code here (a spec file can come from anyone): on PostgreSQL
            # it runs as a role that can only read, in a READ ONLY transaction on this one's
            # snapshot, so `setval(...)`, `pg_read_file(...)` or `set_config('role', ...)` in it are
            # refused and what it may still do there is rolled back, as in the SQL console.
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
            reading = reading_connection(engine, sql_url=sql_url, snapshot=where_snapshot, timeout_s=sql_timeout_s)
            try:
                connection = stack.enter_context(reading)
            except CurationError as error:
                raise CurationError(f"the spec's where clause runs only as a role that can read: {error}") from None
            except DBAPIError as error:  # SET TRANSACTION SNAPSHOT on a replica, or on another database
                raise CurationError(
                    "the spec's where clause runs in a read-only session on the create's snapshot, which "
                    f"could not be opened: {first_line(error)} (CURATION_SQL_URL must reach the same primary "
                    "database)"
                ) from None
        try:
            # Errors of the condition itself (1/0, a failed cast) can come with any fetch of a
            # server-side cursor, not only with the first.
            yield from _grouped(connection.execute(statement))
        except DBAPIError as error:
            if spec.where:
                raise _where_failed(spec, error) from None
            raise


def _shingles(body: str) -> set[tuple[str, ...]]:
    words = _WORDS.findall(body.lower())
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def _jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _choose(spec: SnapshotSpec, group: list[_Candidate]) -> list[tuple[_Candidate, str]]:
    """A problem's members: in canonical order, without repeats, at most K."""
    hashed = []
    for c in group:
        record = hashing.member_record(
            task=c.task, split=c.split, source_ref=c.source_ref, question=c.question, choices=c.choices,
            gold_answer=c.gold_answer, kind=c.kind, origin=c.origin, body=c.body, verdict=c.verdict,
            verifier=c.verifier, verifier_version=c.verifier_version,
        )  # fmt: skip
        digest = hashing.member_hash(record)
        hashed.append((hashing.order_key(spec.seed, digest), digest, c))
    hashed.sort(key=lambda item: item[0])
    kept: list[tuple[_Candidate, str]] = []
    seen: set[tuple[str, str]] = set()
    shingles: list[tuple[str, set[tuple[str, ...]]]] = []
    for _, digest, c in hashed:
        if spec.max_per_problem is not None and len(kept) >= spec.max_per_problem:
            break
        if spec.dedupe != "none":
            normal = " ".join(c.body.split())
            if (c.kind, normal) in seen:
                continue
            seen.add((c.kind, normal))
            if spec.dedupe == "near":
                mine = _shingles(c.body)
                if any(k == c.kind and _jaccard(mine, s) >= spec.near_threshold for k, s in shingles):
                    continue
                shingles.append((c.kind, mine))
        kept.append((c, digest))
    return kept


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_CHARS or not _NAME.match(name):
        raise CurationError(
            f"snapshot name {name!r}: 1 to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (NAME@N names a version)"
        )


def create_snapshot(
    session: Session,
    name: str,
    spec: SnapshotSpec | dict[str, Any],
    *,
    sql_url: str | None = None,
    sql_timeout_s: float | None = None,
    trusted_where: bool = False,
) -> tuple[Snapshot, bool]:
    """The version of `name` this spec gives over the data now: an existing one with the same
    hash (created False, nothing written), or a new sealed one (created True).

    On PostgreSQL a spec's `where` runs as a role that can only read: sql_url's
    (CURATION_SQL_URL; curation/sql_console.py says which without it), each statement cancelled
    after sql_timeout_s. trusted_where: the `where` was written by this system's own code (a
    refinement round's), and runs in the caller's transaction as its role."""
    _check_name(name)
    spec = parse_spec(spec)
    where_snapshot = _where_snapshot(session, spec, trusted_where)
    canonical = spec.canonical()
    training = spec.purpose is SnapshotKind.training
    index = EvaluationIndex.load(session)
    report = ContaminationReport()
    latest = session.execute(select(func.max(Snapshot.version)).where(Snapshot.name == name)).scalar_one()
    savepoint = session.begin_nested()
    snapshot = Snapshot(
        name=name, version=(latest or 0) + 1, kind=spec.purpose, spec=canonical, content_sha256="0" * 64,
        row_count=0, sealed=False,
    )  # fmt: skip
    session.add(snapshot)
    session.flush()
    hasher = hashing.SnapshotHasher(canonical)
    batch: list[dict[str, Any]] = []
    tally = _Tally()
    position = 0
    table = SnapshotMember.__table__
    for group in _candidates(session, spec, where_snapshot, sql_url, sql_timeout_s):
        first = group[0]
        refusal = _refusal(first, index, training)
        if refusal is not None:
            report.refuse(refusal)
            continue
        members = _choose(spec, group)
        if not members:
            continue
        if training:
            report.checked_questions += 1
            shared = len(ngrams(first.question) & index.grams) if index.grams else 0
            if shared:
                report.overlapping_questions += 1
                if len(report.overlap_examples) < 20:
                    name_of = problem_name(first.task, first.split, first.source_ref, first.problem_id)
                    report.overlap_examples.append({"problem": name_of, "shared_8grams": shared})
        for candidate, digest in members:
            hasher.add(digest)
            tally.add(candidate)
            batch.append(
                {
                    "snapshot_id": snapshot.id, "rationale_id": candidate.rationale_id, "position": position,
                    "problem_id": candidate.problem_id, "label_id": candidate.label_id, "content_sha256": digest,
                }
            )  # fmt: skip
            position += 1
            if len(batch) >= MEMBER_BATCH:
                session.connection().execute(insert(table), batch)  # type: ignore[arg-type]
                batch = []
    if batch:
        session.connection().execute(insert(table), batch)  # type: ignore[arg-type]
    if report.refused and not (training and spec.drop_contaminated):
        savepoint.rollback()
        raise CurationError(_refusal_message(name, spec, report))
    if position == 0:
        savepoint.rollback()
        raise CurationError(f"the spec selects no rationale for snapshot {name!r}: nothing to freeze")
    digest = hasher.hexdigest()
    existing = session.execute(
        select(Snapshot)
        .where(Snapshot.name == name, Snapshot.content_sha256 == digest, Snapshot.sealed.is_(True))
        .order_by(Snapshot.version)
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        savepoint.rollback()
        return existing, False
    snapshot.content_sha256 = digest
    snapshot.row_count = position
    snapshot.manifest = build_manifest(
        session, snapshot, tally.as_dict(), report.as_dict(index if training else None, spec.drop_contaminated)
    )
    snapshot.sealed = True
    session.flush()
    savepoint.commit()
    return snapshot, True


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str, str]] = Counter()
        self.problems: set[int] = set()
        self.verifiers: Counter[str] = Counter()

    def add(self, c: _Candidate) -> None:
        self.counts[(c.task, c.split, c.origin, c.kind)] += 1
        self.problems.add(c.problem_id)
        if c.verifier is not None:
            self.verifiers[f"{c.verifier}@{c.verifier_version}"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": sum(self.counts.values()),
            "problems": len(self.problems),
            "by_task_split_origin_kind": [
                {"task": t, "split": s, "origin": o, "kind": k, "members": n}
                for (t, s, o, k), n in sorted(self.counts.items())
            ],
            "verifiers": dict(sorted(self.verifiers.items())),
        }


def _refusal(first: _Candidate, index: EvaluationIndex, training: bool) -> dict[str, Any] | None:
    name = problem_name(first.task, first.split, first.source_ref, first.problem_id)
    evaluation_split = first.split_purpose == SplitPurpose.eval.value
    if not training:
        return None if evaluation_split else {"problem": name, "reason": "not from an evaluation split"}
    if evaluation_split:
        return {"problem": name, "reason": "in an evaluation split"}
    twin = index.fingerprints.get(first.fingerprint)
    if twin is not None:
        return {"problem": name, "reason": f"its question is that of evaluation problem {twin}"}
    return None


def _refusal_message(name: str, spec: SnapshotSpec, report: ContaminationReport) -> str:
    listed = "; ".join(f"{entry['problem']}: {entry['reason']}" for entry in report.named[:5])
    more = f" (and {report.refused - 5:,} more)" if report.refused > 5 else ""
    if spec.purpose is SnapshotKind.training:
        hint = "select training splits (--split train), or drop them with --drop-contaminated"
        what = "a training snapshot takes no evaluation problem"
    else:
        hint = "select evaluation splits only"
        what = "an evaluation snapshot takes only evaluation problems"
    return f"snapshot {name!r} refused: {what}; {report.refused:,} problems would enter: {listed}{more}. {hint}"


def resolve_snapshot(session: Session, ref: str | Snapshot) -> Snapshot:
    """`NAME@N`, or `NAME` for its newest version."""
    if isinstance(ref, Snapshot):
        return ref
    name, at, version = ref.partition("@")
    query = select(Snapshot).where(Snapshot.name == name, Snapshot.sealed.is_(True))
    if at:
        if not version.isdigit():
            raise CurationError(f"{ref!r}: a snapshot version is NAME@N, N a number")
        query = query.where(Snapshot.version == int(version))
    snapshot = session.execute(query.order_by(Snapshot.version.desc()).limit(1)).scalar_one_or_none()
    if snapshot is None:
        versions = session.execute(
            select(Snapshot.version).where(Snapshot.name == name).order_by(Snapshot.version)
        ).scalars()
        known = ", ".join(f"{name}@{v}" for v in versions)
        raise NotFoundError(f"no snapshot {ref!r}" + (f"; there is {known}" if known else ""))
    return snapshot
