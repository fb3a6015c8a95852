"""Kojima et al.'s zero-shot-CoT logs, read as teacher-output records.

Their repository (kojima-takeshi188/zero_shot_cot) publishes one log per task and method,
``log/<dataset>_zero_shot_cot.log``: a ``Namespace(...)`` line with the run's settings, then one
block per question:

    *************************
    12st data
    1_th_sampling
    Q: {the question; multiple-choice ones end "Answer Choices: (A) ... (B) ..."}
    A: Let's think step by step. {rationale}
    Therefore, the answer (arabic numerals) is {the stage-2 completion}
    pred_before : ...
    pred_after : {their extracted answer}
    pred_list : [...]
    pred_mode : ...
    GT : {the gold answer, for multiple choice as a letter of the options shown}
    *************************

Each block is one record: ``question`` as printed; ``generated``, the teacher's text after the
chain-of-thought trigger (rationale, stage-2 trigger and stage-2 answer, one completion: the trigger
is part of the prompt, the rest the teacher wrote); ``gold``, their GT; and ``index``,
``reported_prediction`` (pred_after) kept as metadata. Several ``k_th_sampling`` sections of one
block (self-consistency runs) are a list of outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curation.errors import InputError, SourceLocation
from curation.ingestion.readers import MAX_RECORD_BYTES, RawRecord

_RULE = re.compile(r"^\*{5,}\s*$")
_DATA = re.compile(r"^(\d+)(?:st|nd|rd|th) data\s*$")
_SAMPLING = re.compile(r"^\d+_th_sampling\s*$")
_COT_TRIGGER = re.compile(r"""\bcot_trigger=(["'])(.*?)\1[,)]""")
_FIELD = re.compile(r"^(pred_before|pred_after|pred_list|pred_mode|GT) : ?(.*)$")
DEFAULT_COT_TRIGGER = "Let's think step by step."


def looks_like_kojima_log(path: Path) -> bool:
    """Whether the file opens as one of these logs do (a rule of asterisks, then the settings)."""
    with path.open("rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace")
    return bool(_RULE.match(head.split("\n", 1)[0])) and "Namespace(" in head


def _section(lines: list[tuple[int, str]], cot_trigger: str, source: str) -> tuple[int, str, str, dict[str, str]]:
    """(line of "Q:", question, output, fields) of one sampling section."""
    start = next((i for i, (_, line) in enumerate(lines) if line.startswith("Q:")), None)
    if start is None:
        raise InputError(SourceLocation(source, line=lines[0][0]), 'a block without a "Q:" line')
    answer = next((i for i in range(start + 1, len(lines)) if lines[i][1].startswith("A:")), None)
    if answer is None:
        raise InputError(SourceLocation(source, line=lines[start][0]), 'a question without its "A:" line')
    ends = next((i for i in range(answer, len(lines)) if _FIELD.match(lines[i][1])), len(lines))
    question = "\n".join([lines[start][1][2:].strip(), *(line for _, line in lines[start + 1 : answer])]).strip()
    output = "\n".join([lines[answer][1][2:], *(line for _, line in lines[answer + 1 : ends])])
    output = output.lstrip()
    if output.startswith(cot_trigger):
        output = output[len(cot_trigger) :]  # the trigger is the prompt's, not the teacher's
    fields = {}
    for _, line in lines[ends:]:
        found = _FIELD.match(line)
        if found:
            fields[found.group(1)] = found.group(2).strip()
    return lines[start][0], question, output.rstrip(), fields


def read_kojima_log(path: Path) -> Iterator[RawRecord]:
    """One record per question block (module docstring); InputError naming the line otherwise."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(source, f"not UTF-8 text: {error}") from None
    cot_trigger = DEFAULT_COT_TRIGGER
    header = _COT_TRIGGER.search(text[:20_000])
    if header:
        cot_trigger = header.group(2)
    block: list[tuple[int, str]] = []
    index = 0
    for number, line in enumerate([*text.split("\n"), "*****"], start=1):
        if not _RULE.match(line):
            block.append((number, line))
            continue
        found = next((i for i, (_, text_line) in enumerate(block) if _DATA.match(text_line)), None)
        if found is not None:
            record = _record(block[found:], cot_trigger, source, index)
            if record is not None:
                yield record
                index += 1
        block = []


def _record(block: list[tuple[int, str]], cot_trigger: str, source: str, index: int) -> RawRecord | None:
    data_line = block[0]
    size = sum(len(line) + 1 for _, line in block)
    if size > MAX_RECORD_BYTES:
        raise InputError(
            SourceLocation(source, line=data_line[0]), f"block is {size:,} bytes; the limit is {MAX_RECORD_BYTES:,}"
        )
    body = block[1:]
    cuts = [i for i, (_, line) in enumerate(body) if _SAMPLING.match(line)] or [-1]
    sections = [body[cut + 1 : end] for cut, end in zip(cuts, [*cuts[1:], len(body)], strict=True)]
    sections = [s for s in sections if any(line.startswith("Q:") for _, line in s)]
    if not sections:
        return None  # a numbered block with no question: nothing the teacher wrote
    parsed = [_section(s, cot_trigger, source) for s in sections]
    line, question, _, _ = parsed[0]
    fields: dict[str, str] = {}
    for _, _, _, section_fields in parsed:
        fields.update(section_fields)
    outputs = [output for _, _, output, _ in parsed]
    data: dict[str, Any] = {
        "question": question,
        "generated": outputs if len(outputs) > 1 else outputs[0],
        "index": int(_DATA.match(data_line[1]).group(1)),  # type: ignore[union-attr]
    }
    if "GT" in fields:
        data["gold"] = fields["GT"]
    if "pred_after" in fields:
        data["reported_prediction"] = fields["pred_after"]
    return RawRecord(SourceLocation(source, line=line), index, data)
