"""The record formats we can read: each benchmark's own layout, PAL's JSONL, and mapped columns.

A format is a reader (file -> raw records) and a parser (raw record -> question, gold, choices, ...).
Parsers work on plain dicts, so the same parser serves a file and a Hugging Face hub row.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.errors import CurationError
from curation.ingestion.readers import RawRecord, read_asdiv_xml, read_csv, read_json_records, read_jsonl
from curation.models.task import AnswerType

Choice = dict[str, str]  # {"label": "A", "text": "..."}


class RecordError(ValueError):
    """A record is not what its format promises; the caller adds the location."""


@dataclass(frozen=True)
class ParsedProblem:
    """A record's fields, not yet validated: `gold` is whatever the record held (rows.build_row checks it)."""

    question: str
    gold: object
    source_id: str | None = None
    choices: list[Choice] | None = None
    reference_rationale: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class ColumnMapping:
    """Which input columns hold what, for generic JSONL/CSV and hub datasets.

    Unmapped columns are kept in `problem.meta` when `keep_other_columns` is set.
    """

    question: str = "question"
    answer: str = "answer"
    id: str | None = None
    choices: str | None = None
    rationale: str | None = None
    keep_other_columns: bool = True

    @classmethod
    def parse(cls, pairs: list[str]) -> ColumnMapping:
        """From CLI pairs like ["question=input", "answer=target"]."""
        known = {"question", "answer", "id", "choices", "rationale"}
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, column = pair.partition("=")
            if not sep or key not in known or not column:
                raise CurationError(f"bad column mapping {pair!r}: use FIELD=COLUMN with FIELD one of {sorted(known)}")
            values[key] = column
        return cls(
            question=values.get("question", "question"),
            answer=values.get("answer", "answer"),
            id=values.get("id"),
            choices=values.get("choices"),
            rationale=values.get("rationale"),
        )


@dataclass(frozen=True)
class ParseOptions:
    answer_type: AnswerType
    shuffle_choices: bool = False
    mapping: ColumnMapping = field(default_factory=ColumnMapping)


Parser = Callable[[Mapping[str, Any], ParseOptions], ParsedProblem]
Reader = Callable[[Path], Iterator[RawRecord]]


@dataclass(frozen=True)
class Format:
    name: str
    read: Reader
    parse: Parser
    description: str


def _text(row: Mapping[str, Any], key: str) -> str:
    if key not in row:
        raise RecordError(f'missing field "{key}"')
    value = row[key]
    if not isinstance(value, str):
        raise RecordError(f'field "{key}" should be text, found {type(value).__name__}')
    return value.strip()


def _value(row: Mapping[str, Any], key: str) -> Any:
    if key not in row or row[key] is None:
        raise RecordError(f'missing field "{key}"')
    return row[key]


def _id(row: Mapping[str, Any], key: str) -> str | None:
    """A record's own id, as text; None when it has none."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f'field "{key}" should be an id (text or a number), found {type(value).__name__}')
    return str(value)


def _letters(count: int) -> list[str]:
    if count > 26:
        raise RecordError(f"{count} choices; at most 26 are supported")
    return [chr(ord("A") + i) for i in range(count)]


_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[).:]\s*")


def parse_choices(value: Any) -> list[Choice]:
    """Choices in any of the shapes benchmarks use, as [{"label", "text"}] with letter labels.

    - ["A)5", "B)6"] (AQuA) or ["x", "y"] (labels assigned A, B, ...);
    - [{"label": "A", "text": "x"}] (CommonsenseQA files);
    - {"label": ["A", "B"], "text": ["x", "y"]} (CommonsenseQA on the hub);
    - {"A": "x", "B": "y"}.
    """
    if isinstance(value, dict) and isinstance(value.get("label"), list) and isinstance(value.get("text"), list):
        labels, texts = value["label"], value["text"]
        if len(labels) != len(texts):
            raise RecordError("choices have different numbers of labels and texts")
        return [
            {"label": str(lab).strip().upper(), "text": str(txt).strip()}
            for lab, txt in zip(labels, texts, strict=True)
        ]
    if isinstance(value, dict):
        return [{"label": str(k).strip().upper(), "text": str(v).strip()} for k, v in value.items()]
    if isinstance(value, list):
        if all(isinstance(item, dict) for item in value):
            try:
                return [{"label": str(c["label"]).strip().upper(), "text": str(c["text"]).strip()} for c in value]
            except KeyError as missing:
                raise RecordError(f"a choice lacks {missing}") from None
        if all(isinstance(item, str) for item in value):
            prefixed = [_OPTION_PREFIX.match(item) for item in value]
            if all(prefixed):
                return [
                    {"label": m.group(1).upper(), "text": item[m.end() :].strip()}
                    for m, item in zip(prefixed, value, strict=True)
                    if m is not None
                ]
            return [
                {"label": label, "text": item.strip()} for label, item in zip(_letters(len(value)), value, strict=True)
            ]
    raise RecordError(f"cannot read choices from {type(value).__name__}")


def _check_choices(choices: list[Choice]) -> list[Choice]:
    if len(choices) < 2:
        raise RecordError(f"a multiple-choice problem needs at least 2 choices, found {len(choices)}")
    labels = [c["label"] for c in choices]
    if len(set(labels)) != len(labels):
        raise RecordError(f"duplicate choice labels {labels}")
    return choices


# --- Benchmarks -----------------------------------------------------------------------------------

_CALCULATOR = re.compile(r"<<[^>]*>>")


def parse_gsm8k(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    """GSM8K: the answer is a worked solution whose last line is `#### <number>`."""
    solution = _text(row, "answer")
    body, marker, final = solution.rpartition("####")
    if not marker:
        raise RecordError('answer has no "#### <number>" line')
    return ParsedProblem(
        question=_text(row, "question"),
        gold=final.strip(),
        # The <<48/2=24>> calculator marks are annotation for tools, not part of the reasoning.
        reference_rationale=_CALCULATOR.sub("", body).strip() or None,
    )


def parse_svamp(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    # Joined with a space as zero-shot-CoT and Fine-tune-CoT do; Body often ends mid-sentence.
    body, question = _text(row, "Body"), _text(row, "Question")
    return ParsedProblem(
        question=f"{body} {question}".strip(),
        gold=_value(row, "Answer"),
        source_id=_id(row, "ID"),
        meta={"equation": row.get("Equation"), "type": row.get("Type")},
    )


def parse_mawps(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    """MultiArith / AddSub / SingleEq as distributed with zero-shot-CoT (sQuestion, lSolutions)."""
    solutions = _value(row, "lSolutions")
    if not isinstance(solutions, list) or len(solutions) != 1:
        raise RecordError(f"expected exactly one solution in lSolutions, found {solutions!r}")
    return ParsedProblem(
        question=" ".join(_text(row, "sQuestion").split()),
        gold=solutions[0],
        source_id=_id(row, "iIndex"),
        meta={"equations": row.get("lEquations")},
    )


def parse_aqua(row: Mapping[str, Any], options: ParseOptions) -> ParsedProblem:
    choices = _check_choices(parse_choices(_value(row, "options")))
    return ParsedProblem(
        question=_text(row, "question"),
        gold=_text(row, "correct"),
        choices=choices,
        reference_rationale=(row.get("rationale") or "").strip() or None,
    )


def parse_commonsense_qa(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    question = row.get("question")
    if isinstance(question, dict):  # the published files nest stem and choices
        stem, raw_choices = _text(question, "stem"), _value(question, "choices")
        concept = question.get("question_concept")
    else:  # the hub flattens them
        stem, raw_choices = _text(row, "question"), _value(row, "choices")
        concept = row.get("question_concept")
    return ParsedProblem(
        question=stem,
        gold=_text(row, "answerKey"),
        source_id=_id(row, "id"),
        choices=_check_choices(parse_choices(raw_choices)),
        meta={"concept": concept} if concept else None,
    )


def _shuffled(choices: list[Choice], gold_text: str, seed: str) -> tuple[list[Choice], str]:
    texts = [c["text"] for c in choices]
    random.Random(seed).shuffle(texts)
    relabelled = [{"label": label, "text": text} for label, text in zip(_letters(len(texts)), texts, strict=True)]
    return relabelled, next(c["label"] for c in relabelled if c["text"] == gold_text)


def parse_bigbench(row: Mapping[str, Any], options: ParseOptions) -> ParsedProblem:
    """BIG-bench JSON tasks: `input` and `target_scores` ({option: 0 or 1}).

    Yes/no tasks (StrategyQA) take the option scored 1 as the answer. Multiple-choice tasks get
    letter-labelled choices. Date Understanding lists the right option first in 364 of its 369
    examples, so its choices are shuffled (as Fine-tune-CoT does), with a seed derived from the
    question so that the order is the same on every ingest.
    """
    question = _text(row, "input")
    scores = _value(row, "target_scores")
    if not isinstance(scores, dict) or not scores:
        raise RecordError("target_scores should be a non-empty object")
    winners = [option for option, score in scores.items() if score == 1]
    if len(winners) != 1:
        raise RecordError(f"expected exactly one option scored 1 in target_scores, found {len(winners)}")
    target = row.get("target")
    rationale = None
    if isinstance(target, str):
        rationale = re.sub(r"^(yes|no)\b[.,]?\s*", "", target.strip(), flags=re.IGNORECASE) or None
    if options.answer_type is not AnswerType.multiple_choice:
        return ParsedProblem(question=question, gold=str(winners[0]).strip(), reference_rationale=rationale)
    texts = [str(option).strip() for option in scores]
    choices = [{"label": label, "text": text} for label, text in zip(_letters(len(texts)), texts, strict=True)]
    gold_text = str(winners[0]).strip()
    if options.shuffle_choices:
        choices, gold = _shuffled(choices, gold_text, seed=question)
    else:
        gold = next(c["label"] for c in choices if c["text"] == gold_text)
    return ParsedProblem(question=question, gold=gold, choices=_check_choices(choices), reference_rationale=rationale)


def parse_symbolic(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    """Coin Flip and Last Letter Concatenation (zero-shot-CoT's generated sets)."""
    return ParsedProblem(question=_text(row, "question"), gold=_value(row, "answer"))


def parse_asdiv(row: Mapping[str, Any], _: ParseOptions) -> ParsedProblem:
    body, question = _text(row, "Body"), _text(row, "Question")
    return ParsedProblem(
        question=f"{body} {question}".strip(),
        gold=_text(row, "Answer"),
        source_id=_id(row, "ID"),
        meta={
            "formula": row.get("Formula"),
            "solution_type": row.get("Solution-Type"),
            "grade": row.get("Grade"),
        },
    )


_PAL_CHOICES = re.compile(r"Answer Choices:\s*(.*)$", re.DOTALL)
_PAL_OPTION = re.compile(r"\(([a-eA-E])\)\s*(.*?)(?=\([a-eA-E]\)|$)", re.DOTALL)


def parse_pal(row: Mapping[str, Any], options: ParseOptions) -> ParsedProblem:
    """PAL's datasets/*.jsonl: {"input", "target"}; AQuA inlines "Answer Choices:(a) ...(b) ..."."""
    question = _text(row, "input")
    target = _value(row, "target")
    if options.answer_type is not AnswerType.multiple_choice:
        return ParsedProblem(question=question, gold=target)
    found = _PAL_CHOICES.search(question)
    if not found:
        raise RecordError('no "Answer Choices:" in a multiple-choice input')
    choices = [{"label": m.group(1).upper(), "text": m.group(2).strip()} for m in _PAL_OPTION.finditer(found.group(1))]
    return ParsedProblem(question=question[: found.start()].strip(), gold=target, choices=_check_choices(choices))


def parse_mapped(row: Mapping[str, Any], options: ParseOptions) -> ParsedProblem:
    """Any JSONL/CSV/hub row, through a column mapping."""
    mapping = options.mapping
    question = _value(row, mapping.question)
    if not isinstance(question, str):
        raise RecordError(f'column "{mapping.question}" should be text, found {type(question).__name__}')
    choices = None
    if mapping.choices is not None:
        choices = _check_choices(parse_choices(_value(row, mapping.choices)))
    rationale = row.get(mapping.rationale) if mapping.rationale else None
    used = {mapping.question, mapping.answer, mapping.id, mapping.choices, mapping.rationale}
    meta = {k: v for k, v in row.items() if k not in used} if mapping.keep_other_columns else None
    return ParsedProblem(
        question=question.strip(),
        gold=_value(row, mapping.answer),
        source_id=_id(row, mapping.id) if mapping.id else None,
        choices=choices,
        reference_rationale=rationale.strip() if isinstance(rationale, str) and rationale.strip() else None,
        meta=meta or None,
    )


def _bigbench_reader(path: Path) -> Iterator[RawRecord]:
    return read_json_records(path, key="examples")


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("gsm8k", read_jsonl, parse_gsm8k, "GSM8K JSONL: question, answer ending in '#### n'"),
        Format("svamp", read_json_records, parse_svamp, "SVAMP JSON: ID, Body, Question, Answer"),
        Format("mawps", read_json_records, parse_mawps, "MultiArith/AddSub/SingleEq JSON: sQuestion, lSolutions"),
        Format("aqua", read_jsonl, parse_aqua, "AQuA JSON lines: question, options, rationale, correct"),
        Format(
            "commonsense_qa",
            read_jsonl,
            parse_commonsense_qa,
            "CommonsenseQA JSONL: id, question{stem,choices}, answerKey",
        ),
        Format("bigbench", _bigbench_reader, parse_bigbench, "BIG-bench JSON: examples[input, target_scores]"),
        Format(
            "symbolic",
            _bigbench_reader,
            parse_symbolic,
            "Coin Flip / Last Letters JSON: examples[question, answer]",
        ),
        Format("asdiv", read_asdiv_xml, parse_asdiv, "ASDiv XML: Problem[Body, Question, Answer]"),
        Format("pal", read_jsonl, parse_pal, "PAL JSONL: input, target"),
        Format("jsonl", read_jsonl, parse_mapped, "any JSONL, with --map FIELD=COLUMN"),
        Format("csv", read_csv, parse_mapped, "any CSV with a header row, with --map FIELD=COLUMN"),
    )
}
