"""The SQL views over rationale quality, as frozen, versioned definitions.

Migrations create and drop views from here: `V1` is what revision 0001 created, `V2` the views
revision 0004 replaced, `V3` those revision 0006 replaced, `V4` the snapshot views revision 0007
added, `V5` the refinement-round views of 0009, `V6` the views 0012 replaced (evaluation runs out
of the teacher views, refinement rounds by the run trained in them), `V7` those 0013 replaced (a
repair is one only of an attempt that was not correct). A definition is never edited
once released; changing a view means adding a version (with the views that changed) and a
migration that replaces them, so that every revision keeps rebuilding exactly what it built. See
docs/sql.md for what each view holds.
"""

from __future__ import annotations

from typing import Any

# Written in the SQL that SQLite (3.25+) and PostgreSQL share: window functions, recursive CTEs,
# CASE instead of FILTER, and a cast to DOUBLE PRECISION wherever integer division would truncate.


def _float(expression: str) -> str:
    # DOUBLE PRECISION is a float on PostgreSQL (a bare `* 1.0` would give NUMERIC) and has REAL
    # affinity on SQLite.
    return f"CAST({expression} AS DOUBLE PRECISION)"


def _bigint(expression: str) -> str:
    # SUM over BIGINT is NUMERIC on PostgreSQL; counts should stay integers.
    return f"CAST({expression} AS BIGINT)"


def _ratio(numerator: str, denominator: str) -> str:
    return f"CASE WHEN {denominator} = 0 THEN NULL ELSE {_float(numerator)} / {denominator} END"


def _pass_at_k(k: int, n: str = "n", c: str = "c") -> str:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), as a product of k ratios.

    NULL when fewer than k samples exist (pass@k is undefined there).
    """
    ratios = " * ".join(f"({_float(f'{n} - {c} - {j}')} / ({n} - {j}))" for j in range(k))
    return f"CASE WHEN {n} < {k} THEN NULL WHEN {n} - {c} < {k} THEN {_float('1')} ELSE 1.0 - {ratios} END"


_CORRECT = "SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END)"


def _run_quality(executed_ok: str, joins: str, where: str = "") -> str:
    return f"""
SELECT r.id AS synthesis_run_id, r.name AS run_name, t.name AS task, r.split,
       m.name AS teacher, pt.name AS template, pt.version AS template_version, pt.style,
       r.samples_per_problem, r.temperature, r.status,
       COUNT(g.id) AS generations,
       SUM(CASE WHEN g.status = 'failed' THEN 1 ELSE 0 END) AS failed,
       COUNT(ra.id) AS rationales,
       COUNT(cl.label_id) AS labelled,
       SUM(CASE WHEN cl.verdict IN ('correct', 'incorrect', 'error') THEN 1 ELSE 0 END) AS parsed,
       {executed_ok} AS executed_ok,
       {_CORRECT} AS correct,
       {_ratio(_CORRECT, "COUNT(g.id)")} AS pass_rate
FROM synthesis_run r
JOIN task t ON t.id = r.task_id
JOIN model m ON m.id = r.teacher_id
JOIN prompt_template pt ON pt.id = r.template_id
LEFT JOIN generation g ON g.synthesis_run_id = r.id
LEFT JOIN rationale ra ON ra.generation_id = g.id
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
{joins}
{where}
GROUP BY r.id, r.name, t.name, r.split, m.name, pt.name, pt.version, pt.style,
         r.samples_per_problem, r.temperature, r.status"""


V1: list[tuple[str, str]] = [
    (
        # The label that speaks for a rationale now: its most recent one. Older labels (other
        # verifier versions) stay in `label` for history.
        "current_label",
        """
SELECT label_id, rationale_id, execution_id, verifier, verifier_version, verdict, score
FROM (
    SELECT l.id AS label_id, l.rationale_id, l.execution_id, l.verifier, l.verifier_version,
           l.verdict, l.score,
           ROW_NUMBER() OVER (PARTITION BY l.rationale_id ORDER BY l.id DESC) AS recency
    FROM label l
) ranked
WHERE recency = 1""",
    ),
    (
        # The most recent execution of each program rationale (re-running under new limits adds
        # a row; the latest one is what the program does now).
        "current_execution",
        """
SELECT execution_id, rationale_id, status, value, error_type, error_message, duration_ms
FROM (
    SELECT e.id AS execution_id, e.rationale_id, e.status, e.value, e.error_type, e.error_message,
           e.duration_ms,
           ROW_NUMBER() OVER (PARTITION BY e.rationale_id ORDER BY e.id DESC) AS recency
    FROM execution e
) ranked
WHERE recency = 1""",
    ),
    (
        "run_quality",
        _run_quality(
            "SUM(CASE WHEN ce.status = 'ok' THEN 1 ELSE 0 END)",
            "LEFT JOIN current_execution ce ON ce.rationale_id = ra.id",
        ),
    ),
    (
        # Per task x split x teacher x template, over all runs: "which template gives the most
        # correct, executable programs on GSM8K train, per teacher?"
        "quality",
        f"""
SELECT task, split, teacher, template, template_version, style,
       COUNT(*) AS runs,
       {_bigint("SUM(generations)")} AS generations,
       {_bigint("SUM(failed)")} AS failed,
       {_bigint("SUM(parsed)")} AS parsed,
       {_bigint("SUM(executed_ok)")} AS executed_ok,
       {_bigint("SUM(correct)")} AS correct,
       {_ratio("SUM(correct)", "SUM(generations)")} AS pass_rate
FROM run_quality
GROUP BY task, split, teacher, template, template_version, style""",
    ),
    (
        # Per problem and run: samples (successful generations), correct ones, pass@k.
        "problem_coverage",
        f"""
WITH counts AS (
    SELECT g.synthesis_run_id, g.problem_id, COUNT(*) AS n,
           SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) AS c
    FROM generation g
    LEFT JOIN rationale ra ON ra.generation_id = g.id
    LEFT JOIN current_label cl ON cl.rationale_id = ra.id
    WHERE g.status = 'ok'
    GROUP BY g.synthesis_run_id, g.problem_id
)
SELECT counts.synthesis_run_id, counts.problem_id, t.name AS task, p.split, p.source_ref,
       counts.n AS samples, counts.c AS correct_samples,
       {_pass_at_k(1)} AS pass_at_1,
       {_pass_at_k(5)} AS pass_at_5,
       {_pass_at_k(10)} AS pass_at_10,
       CASE WHEN counts.c > 0 THEN 1 ELSE 0 END AS solved
FROM counts
JOIN problem p ON p.id = counts.problem_id
JOIN task t ON t.id = p.task_id""",
    ),
    (
        # Problems no teacher has solved yet, including those never attempted.
        "unsolved_problem",
        """
SELECT p.id AS problem_id, t.name AS task, p.split, p.source_ref, p.question, p.gold_answer,
       COUNT(ra.id) AS teacher_samples
FROM problem p
JOIN task t ON t.id = p.task_id
LEFT JOIN rationale ra ON ra.problem_id = p.id AND ra.origin = 'teacher'
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
GROUP BY p.id, t.name, p.split, p.source_ref, p.question, p.gold_answer
HAVING SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) = 0""",
    ),
    (
        # What goes wrong when programs run (their current execution), per task, run (NULL for
        # student and refinement output) and origin.
        "execution_error_breakdown",
        f"""
SELECT t.name AS task, g.synthesis_run_id, m.name AS model, ra.origin, e.status,
       COALESCE(e.error_type, '') AS error_type,
       COUNT(*) AS executions,
       {_float("COUNT(*)")} / SUM(COUNT(*)) OVER (PARTITION BY t.name, g.synthesis_run_id, ra.origin) AS share
FROM current_execution e
JOIN rationale ra ON ra.id = e.rationale_id
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.id = ra.generation_id
LEFT JOIN synthesis_run r ON r.id = g.synthesis_run_id
LEFT JOIN model m ON m.id = COALESCE(r.teacher_id, ra.model_id)
GROUP BY t.name, g.synthesis_run_id, m.name, ra.origin, e.status, COALESCE(e.error_type, '')""",
    ),
    (
        # Every refined rationale (depth 0) with its ancestors (depth 1, 2, ...): the refinement
        # chain back to the original. Rationales that were never refined have no rows here.
        "rationale_lineage",
        """
WITH RECURSIVE chain(rationale_id, ancestor_id, depth) AS (
    SELECT id, id, 0 FROM rationale WHERE parent_id IS NOT NULL
    UNION ALL
    SELECT chain.rationale_id, r.parent_id, chain.depth + 1
    FROM chain JOIN rationale r ON r.id = chain.ancestor_id
    WHERE r.parent_id IS NOT NULL
)
SELECT chain.rationale_id, chain.depth, chain.ancestor_id, a.origin, a.kind, a.answer,
       a.feedback, cl.verdict, e.status AS execution_status, e.error_type
FROM chain
JOIN rationale a ON a.id = chain.ancestor_id
LEFT JOIN current_label cl ON cl.rationale_id = a.id
LEFT JOIN current_execution e ON e.rationale_id = a.id""",
    ),
    (
        # One row per refinement: what was wrong with the parent and whether the child fixed it.
        # "How often does a refinement fix a NameError?" is a GROUP BY parent_error_type away.
        "refinement_outcome",
        """
SELECT child.id AS rationale_id, child.parent_id, child.problem_id,
       pe.status AS parent_execution_status, pe.error_type AS parent_error_type,
       pl.verdict AS parent_verdict, ce.status AS execution_status, cl.verdict,
       CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END AS fixed
FROM rationale child
JOIN rationale parent ON parent.id = child.parent_id
LEFT JOIN current_label pl ON pl.rationale_id = parent.id
LEFT JOIN current_execution pe ON pe.rationale_id = parent.id
LEFT JOIN current_label cl ON cl.rationale_id = child.id
LEFT JOIN current_execution ce ON ce.rationale_id = child.id
WHERE child.origin = 'refinement'""",
    ),
]


V2: list[tuple[str, str]] = [
    (
        # executed_ok now counts the execution the current label was made from. V1 counted each
        # program's latest execution, which under new sandbox limits (a new execution, labelled by a
        # later verifier run) could disagree with the verdicts counted beside it.
        "run_quality",
        _run_quality(
            "SUM(CASE WHEN le.status = 'ok' THEN 1 ELSE 0 END)",
            "LEFT JOIN execution le ON le.id = cl.execution_id",
        ),
    ),
    ("quality", dict(V1)["quality"]),  # unchanged, but it reads run_quality, so it is rebuilt with it
]

# Revision 0006: one definition of the execution a rationale's verdict stands on, used by every
# view that reports executions (before, run_quality read the labelled execution and the breakdown
# the latest one, so one run could read "1 correct" beside "100% timeout"); shares per model; a
# refinement fixes only a parent that was not correct; unsolved problems count teacher calls.
_JUDGED_EXECUTION = """
SELECT e.id AS execution_id, e.rationale_id, e.status, e.value, e.error_type, e.error_message,
       e.duration_ms
FROM execution e
JOIN (
    SELECT ra.id AS rationale_id,
           CASE WHEN cl.label_id IS NOT NULL THEN cl.execution_id ELSE latest.execution_id END AS execution_id
    FROM rationale ra
    LEFT JOIN current_label cl ON cl.rationale_id = ra.id
    LEFT JOIN (
        SELECT rationale_id, MAX(id) AS execution_id FROM execution GROUP BY rationale_id
    ) latest ON latest.rationale_id = ra.id
) judged ON judged.execution_id = e.id"""

V3: list[tuple[str, str]] = [
    (
        # The execution a program rationale's verdict was made from: its current label's, or,
        # while it has no label yet, its latest. A program re-run under other limits and not
        # labelled again does not change what the views say about it.
        "current_execution",
        _JUDGED_EXECUTION,
    ),
    (
        "run_quality",
        _run_quality(
            "SUM(CASE WHEN ce.status = 'ok' THEN 1 ELSE 0 END)",
            "LEFT JOIN current_execution ce ON ce.rationale_id = ra.id",
        ),
    ),
    ("quality", dict(V1)["quality"]),  # unchanged; rebuilt with run_quality
    (
        # Problems no teacher has solved, with how often a teacher was asked (every generation,
        # failed calls included: 0 means never attempted).
        "unsolved_problem",
        """
SELECT p.id AS problem_id, t.name AS task, p.split, p.source_ref, p.question, p.gold_answer,
       COUNT(DISTINCT g.id) AS teacher_samples
FROM problem p
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.problem_id = p.id
LEFT JOIN rationale ra ON ra.generation_id = g.id AND ra.origin = 'teacher'
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
GROUP BY p.id, t.name, p.split, p.source_ref, p.question, p.gold_answer
HAVING SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) = 0""",
    ),
    (
        # What goes wrong when programs run (the execution each verdict stands on), per task, run
        # (NULL for student and refinement output), model and origin; share is of that task, run,
        # model and origin.
        "execution_error_breakdown",
        f"""
SELECT t.name AS task, g.synthesis_run_id, m.id AS model_id, m.name AS model, ra.origin, e.status,
       COALESCE(e.error_type, '') AS error_type,
       COUNT(*) AS executions,
       {_float("COUNT(*)")} / SUM(COUNT(*)) OVER (PARTITION BY t.name, g.synthesis_run_id, m.id, ra.origin) AS share
FROM current_execution e
JOIN rationale ra ON ra.id = e.rationale_id
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.id = ra.generation_id
LEFT JOIN synthesis_run r ON r.id = g.synthesis_run_id
LEFT JOIN model m ON m.id = COALESCE(r.teacher_id, ra.model_id)
GROUP BY t.name, g.synthesis_run_id, m.id, m.name, ra.origin, e.status, COALESCE(e.error_type, '')""",
    ),
    ("rationale_lineage", dict(V1)["rationale_lineage"]),  # unchanged; reads current_execution
    (
        # One row per refinement: what was wrong with the parent and whether the child fixed it
        # (the parent was not correct, the child is).
        "refinement_outcome",
        """
SELECT child.id AS rationale_id, child.parent_id, child.problem_id,
       pe.status AS parent_execution_status, pe.error_type AS parent_error_type,
       pl.verdict AS parent_verdict, ce.status AS execution_status, cl.verdict,
       CASE WHEN cl.verdict = 'correct' AND COALESCE(pl.verdict, '') <> 'correct' THEN 1 ELSE 0 END AS fixed
FROM rationale child
JOIN rationale parent ON parent.id = child.parent_id
LEFT JOIN current_label pl ON pl.rationale_id = parent.id
LEFT JOIN current_execution pe ON pe.rationale_id = parent.id
LEFT JOIN current_label cl ON cl.rationale_id = child.id
LEFT JOIN current_execution ce ON ce.rationale_id = child.id
WHERE child.origin = 'refinement'""",
    ),
]

# Revision 0007: views over snapshots. A member's verdict is the one it was chosen for (the label
# the selection read, kept with the member), not whatever label the rationale has now.
V4: list[tuple[str, str]] = [
    (
        # One row per snapshot version: its name@version, kind, sizes and hash.
        "snapshot_summary",
        """
SELECT s.id AS snapshot_id, s.name, s.version, s.name || '@' || CAST(s.version AS VARCHAR(20)) AS ref,
       s.kind, s.sealed, s.row_count AS members, COUNT(DISTINCT sm.problem_id) AS problems,
       s.content_sha256, s.created_at
FROM snapshot s
LEFT JOIN snapshot_member sm ON sm.snapshot_id = s.id
GROUP BY s.id, s.name, s.version, s.kind, s.sealed, s.row_count, s.content_sha256, s.created_at""",
    ),
    (
        # Members per snapshot, task, split, origin, kind and the verdict they were chosen for.
        "snapshot_composition",
        """
SELECT s.id AS snapshot_id, s.name || '@' || CAST(s.version AS VARCHAR(20)) AS ref, t.name AS task,
       p.split, ra.origin, ra.kind, COALESCE(l.verdict, 'unlabelled') AS verdict,
       COUNT(*) AS members, COUNT(DISTINCT sm.problem_id) AS problems
FROM snapshot_member sm
JOIN snapshot s ON s.id = sm.snapshot_id
JOIN rationale ra ON ra.id = sm.rationale_id
JOIN problem p ON p.id = sm.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN label l ON l.id = sm.label_id
GROUP BY s.id, s.name, s.version, t.name, p.split, ra.origin, ra.kind, COALESCE(l.verdict, 'unlabelled')""",
    ),
    (
        # Which runs a snapshot drew from (NULL run: rationales without a generation, such as
        # student outputs), with their teachers and templates.
        "snapshot_source_run",
        """
SELECT s.id AS snapshot_id, s.name || '@' || CAST(s.version AS VARCHAR(20)) AS ref,
       g.synthesis_run_id, r.name AS run_name, m.name AS teacher, pt.name AS template,
       pt.version AS template_version, r.samples_per_problem, r.temperature, COUNT(*) AS members
FROM snapshot_member sm
JOIN snapshot s ON s.id = sm.snapshot_id
JOIN rationale ra ON ra.id = sm.rationale_id
LEFT JOIN generation g ON g.id = ra.generation_id
LEFT JOIN synthesis_run r ON r.id = g.synthesis_run_id
LEFT JOIN model m ON m.id = r.teacher_id
LEFT JOIN prompt_template pt ON pt.id = r.template_id
GROUP BY s.id, s.name, s.version, g.synthesis_run_id, r.name, m.name, pt.name, pt.version,
         r.samples_per_problem, r.temperature""",
    ),
    (
        # Which snapshots contain a rationale, and where in each.
        "rationale_snapshot",
        """
SELECT sm.rationale_id, sm.problem_id, s.id AS snapshot_id,
       s.name || '@' || CAST(s.version AS VARCHAR(20)) AS ref, s.kind, sm.position, l.verdict
FROM snapshot_member sm
JOIN snapshot s ON s.id = sm.snapshot_id
LEFT JOIN label l ON l.id = sm.label_id""",
    ),
]

# Revision 0009: refinement rounds. A refinement of round k repairs an attempt of round k-1 (round
# 0: the student's own output). Two kinds: `repair-data` (a training example built by `curation
# refine`: no evaluation, its body a verified program) and `eval-repair` (the student's own repair
# during an evaluation with --repair-rounds; its evaluation is the one of the attempt it repairs).
V5: list[tuple[str, str]] = [
    (
        # One row per refinement: its round, kind, the original output it descends from (root),
        # and what was wrong with the attempt it repairs.
        "refinement_step",
        """
WITH RECURSIVE up(rationale_id, ancestor_id) AS (
    SELECT id, parent_id FROM rationale WHERE origin = 'refinement' AND parent_id IS NOT NULL
    UNION ALL
    SELECT up.rationale_id, r.parent_id
    FROM up JOIN rationale r ON r.id = up.ancestor_id
    WHERE r.parent_id IS NOT NULL
), root_of AS (
    SELECT up.rationale_id, up.ancestor_id AS root_id
    FROM up JOIN rationale a ON a.id = up.ancestor_id
    WHERE a.parent_id IS NULL
)
SELECT child.id AS rationale_id, child.refinement_round AS round,
       CASE WHEN child.evaluation_id IS NULL THEN 'repair-data' ELSE 'eval-repair' END AS mode,
       child.parent_id, root.id AS root_id, root.evaluation_id AS root_evaluation_id,
       child.evaluation_id, ev.training_run_id, child.problem_id, t.name AS task, p.split,
       pe.status AS parent_execution_status,
       CASE WHEN pe.status IS NULL THEN CAST(pl.verdict AS VARCHAR(20))
            WHEN pe.status = 'ok' THEN CASE WHEN pl.verdict = 'unparseable' THEN 'no value' ELSE 'wrong value' END
            ELSE COALESCE(pe.error_type, CAST(pe.status AS VARCHAR(20))) END AS parent_error_type,
       pl.verdict AS parent_verdict, child.feedback, cl.verdict,
       CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END AS repaired
FROM rationale child
JOIN rationale parent ON parent.id = child.parent_id
JOIN root_of ON root_of.rationale_id = child.id
JOIN rationale root ON root.id = root_of.root_id
JOIN problem p ON p.id = child.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN evaluation ev ON ev.id = root.evaluation_id
LEFT JOIN current_label pl ON pl.rationale_id = parent.id
LEFT JOIN current_execution pe ON pe.rationale_id = parent.id
LEFT JOIN current_label cl ON cl.rationale_id = child.id
WHERE child.origin = 'refinement'""",
    ),
    (
        # Per refinement round and kind, per error type of the repaired attempt: how many
        # failures were taken up, how many repairs are correct, the repair rate.
        "repair_rate_by_error",
        f"""
SELECT round, mode, task, parent_error_type AS error_type, COUNT(*) AS failures,
       SUM(repaired) AS repaired, {_float("SUM(repaired)")} / COUNT(*) AS repair_rate
FROM refinement_step
GROUP BY round, mode, task, parent_error_type""",
    ),
    (
        # An evaluation round by round (round 0: the student's first outputs; round k: after k
        # repair rounds). failures: attempts of that round not correct; reachable: those an
        # interpreter can see without the gold answer (error, timeout, syntax, no value: verdict
        # error or unparseable); unreachable: a value, but the wrong one. correct and accuracy:
        # problems solved by any attempt up to that round, so round 0 is the accuracy before
        # repair and the last round the accuracy after it.
        "evaluation_round",
        f"""
WITH attempt AS (
    SELECT ra.evaluation_id, ra.problem_id, COALESCE(ra.refinement_round, 0) AS round, cl.verdict
    FROM rationale ra
    LEFT JOIN current_label cl ON cl.rationale_id = ra.id
    WHERE ra.evaluation_id IS NOT NULL
), rounds AS (
    SELECT DISTINCT evaluation_id, round FROM attempt
)
SELECT r.evaluation_id, r.round, ev.training_run_id, t.name AS task, ev.split, ev.problems,
       SUM(CASE WHEN a.round = r.round THEN 1 ELSE 0 END) AS attempts,
       SUM(CASE WHEN a.round = r.round AND COALESCE(a.verdict, '') <> 'correct' THEN 1 ELSE 0 END) AS failures,
       SUM(CASE WHEN a.round = r.round AND a.verdict IN ('error', 'unparseable') THEN 1 ELSE 0 END) AS reachable,
       SUM(CASE WHEN a.round = r.round AND a.verdict = 'incorrect' THEN 1 ELSE 0 END) AS unreachable,
       COUNT(DISTINCT CASE WHEN a.verdict = 'correct' THEN a.problem_id END) AS correct,
       {_float("COUNT(DISTINCT CASE WHEN a.verdict = 'correct' THEN a.problem_id END)")}
           / CASE WHEN ev.problems > 0 THEN ev.problems ELSE 1 END AS accuracy
FROM rounds r
JOIN evaluation ev ON ev.id = r.evaluation_id
JOIN task t ON t.id = ev.task_id
JOIN attempt a ON a.evaluation_id = r.evaluation_id AND a.round <= r.round
GROUP BY r.evaluation_id, r.round, ev.training_run_id, t.name, ev.split, ev.problems""",
    ),
    (
        # A `curation refine` round: the run whose failures were repaired (before), the runs
        # trained on a snapshot holding those repairs (after), and their evaluations on the same
        # task and split side by side.
        "refinement_round_accuracy",
        """
WITH made AS (
    SELECT DISTINCT s.round, s.training_run_id AS before_run_id, tr.id AS after_run_id
    FROM refinement_step s
    JOIN snapshot_member sm ON sm.rationale_id = s.rationale_id
    JOIN training_run tr ON tr.snapshot_id = sm.snapshot_id
    WHERE s.mode = 'repair-data' AND s.training_run_id IS NOT NULL
)
SELECT made.round, made.before_run_id, made.after_run_id, t.name AS task, b.split,
       b.id AS before_evaluation_id, b.accuracy AS accuracy_before,
       a.id AS after_evaluation_id, a.accuracy AS accuracy_after
FROM made
JOIN evaluation b ON b.training_run_id = made.before_run_id
JOIN evaluation a ON a.training_run_id = made.after_run_id AND a.task_id = b.task_id AND a.split = b.split
JOIN task t ON t.id = b.task_id""",
    ),
]

# Revision 0012. Since 0011 an evaluation's outputs are generations of a synthesis run of its own
# (teacher = the student model, a `student` template): the teacher views leave those runs out.
_TEACHER_RUN = """
SELECT r.id FROM synthesis_run r JOIN prompt_template pt ON pt.id = r.template_id WHERE pt.style <> 'student'"""

# The `curation refine` rounds as (round, run before, run after). A round's snapshot is the run's
# own snapshot plus the repairs of the run's failures, so a run's snapshot holds the repairs of every
# round behind it: its round is how many runs' repairs it holds, and the run it grew from is the one
# whose repairs it holds and whose own round is one less (a snapshot of round 2 also holds round 1's
# repairs, of the run before that, which is not its before-run). Shared with trainer/ablation.py.
REFINEMENT_ROUND_RUNS = """
repaired AS (
    SELECT DISTINCT sm.snapshot_id, s.training_run_id AS source_run_id
    FROM refinement_step s
    JOIN snapshot_member sm ON sm.rationale_id = s.rationale_id
    WHERE s.mode = 'repair-data' AND s.training_run_id IS NOT NULL
), run_round AS (
    SELECT tr.id AS training_run_id, tr.snapshot_id, COUNT(rp.source_run_id) AS round
    FROM training_run tr
    LEFT JOIN repaired rp ON rp.snapshot_id = tr.snapshot_id
    GROUP BY tr.id, tr.snapshot_id
), made AS (
    SELECT after_run.round, rp.source_run_id AS before_run_id, after_run.training_run_id AS after_run_id
    FROM run_round after_run
    JOIN repaired rp ON rp.snapshot_id = after_run.snapshot_id
    JOIN run_round before_run ON before_run.training_run_id = rp.source_run_id
    WHERE after_run.round = before_run.round + 1
)"""


# An evaluation's decoding is greedy (one output per problem, no repair rounds within it): NULL
# decoding is an evaluation made before decodings were stored, all greedy. `->>` is shared by
# PostgreSQL and SQLite 3.38+.
def _greedy(evaluation: str) -> str:
    return (
        f"COALESCE({evaluation}.decoding ->> 'method', 'greedy') = 'greedy' "
        f"AND {evaluation}.decoding ->> 'repair_rounds' IS NULL"
    )


V6: list[tuple[str, str]] = [
    (
        # Teacher runs only: an evaluation's run is in evaluation / evaluation_round.
        "run_quality",
        _run_quality(
            "SUM(CASE WHEN ce.status = 'ok' THEN 1 ELSE 0 END)",
            "LEFT JOIN current_execution ce ON ce.rationale_id = ra.id",
            "WHERE pt.style <> 'student'",
        ),
    ),
    ("quality", dict(V1)["quality"]),  # unchanged; rebuilt with run_quality
    (
        # Problems no teacher has solved, with how often a teacher was asked (every generation of a
        # teacher run, failed calls included: 0 means never attempted; a student's evaluation
        # outputs are no teacher's attempts).
        "unsolved_problem",
        f"""
SELECT p.id AS problem_id, t.name AS task, p.split, p.source_ref, p.question, p.gold_answer,
       COUNT(DISTINCT g.id) AS teacher_samples
FROM problem p
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.problem_id = p.id AND g.synthesis_run_id IN ({_TEACHER_RUN})
LEFT JOIN rationale ra ON ra.generation_id = g.id AND ra.origin = 'teacher'
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
GROUP BY p.id, t.name, p.split, p.source_ref, p.question, p.gold_answer
HAVING SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) = 0""",
    ),
    (
        # A `curation refine` round: the run whose failures were repaired (before), the run trained
        # in that round (after), and their greedy evaluations on the same task and split side by
        # side.
        "refinement_round_accuracy",
        f"""
WITH {REFINEMENT_ROUND_RUNS.strip()}
SELECT made.round, made.before_run_id, made.after_run_id, t.name AS task, b.split,
       b.id AS before_evaluation_id, b.accuracy AS accuracy_before,
       a.id AS after_evaluation_id, a.accuracy AS accuracy_after
FROM made
JOIN evaluation b ON b.training_run_id = made.before_run_id AND {_greedy("b")}
JOIN evaluation a ON a.training_run_id = made.after_run_id AND a.task_id = b.task_id AND a.split = b.split
     AND {_greedy("a")}
JOIN task t ON t.id = b.task_id""",
    ),
]

# Revision 0013: a repair is one when the attempt it repairs was not correct and it is, the rule
# refinement_outcome.fixed follows since V3 (V5 counted a correct refinement of a correct parent
# as repaired, and that parent among the failures of repair_rate_by_error).
_REPAIRED_V5 = "CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END AS repaired"
_REPAIRED = "CASE WHEN cl.verdict = 'correct' AND COALESCE(pl.verdict, '') <> 'correct' THEN 1 ELSE 0 END AS repaired"
assert _REPAIRED_V5 in dict(V5)["refinement_step"]

V7: list[tuple[str, str]] = [
    ("refinement_step", dict(V5)["refinement_step"].replace(_REPAIRED_V5, _REPAIRED)),
    (
        # Per refinement round and kind, per error type of the repaired attempt: how many
        # failures were taken up (a refinement of a correct attempt is none), how many repairs
        # are correct, the repair rate.
        "repair_rate_by_error",
        f"""
SELECT round, mode, task, parent_error_type AS error_type, COUNT(*) AS failures,
       SUM(repaired) AS repaired, {_float("SUM(repaired)")} / COUNT(*) AS repair_rate
FROM refinement_step
WHERE COALESCE(parent_verdict, '') <> 'correct'
GROUP BY round, mode, task, parent_error_type""",
    ),
]

VERSIONS: list[list[tuple[str, str]]] = [V1, V2, V3, V4, V5, V6, V7]


def at_version(number: int) -> dict[str, str]:
    """Every view as version `number` (1-based) left it: a view's body from the newest version
    up to that one that defines it."""
    views: dict[str, str] = {}
    for version in VERSIONS[:number]:
        views.update(version)
    return views


def in_creation_order(views: dict[str, str]) -> list[tuple[str, str]]:
    """The order the versions introduced them in (V1's, then each later version's new views),
    which creates every view after the views it reads."""
    order = list(dict.fromkeys(name for version in VERSIONS for name, _ in version))
    return [(name, views[name]) for name in order if name in views]


def create_views(op: Any, views: list[tuple[str, str]]) -> None:
    for name, body in views:
        op.execute(f"CREATE VIEW {name} AS {body}")


def drop_views(op: Any, views: list[tuple[str, str]]) -> None:
    """Dependent views first (the list is in creation order)."""
    for name, _ in reversed(views):
        op.execute(f"DROP VIEW IF EXISTS {name}")
