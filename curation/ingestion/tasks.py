"""The benchmarks we know by name: answer type, file format and hub location of each.

Names follow Fine-tune-CoT's (`ftcot/split/<name>__default.json`), so its split files apply as-is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from curation.errors import CurationError
from curation.models.task import AnswerType


@dataclass(frozen=True)
class HubSource:
    dataset: str
    config: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    answer_type: AnswerType
    format: str
    description: str
    aliases: tuple[str, ...] = ()
    shuffle_choices: bool = False
    hub: HubSource | None = None
    # Some benchmarks mix answer types (ASDiv has "3:4" and "They are equal" among its numbers);
    # like PAL and PaD we keep the numeric ones, and report what was left out.
    skip_other_answer_types: bool = False


MAX_TASK_NAME_CHARS = 100  # the width of task.name

N, MC, YN, TEXT = AnswerType.number, AnswerType.multiple_choice, AnswerType.yes_no, AnswerType.text

KNOWN_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "gsm8k",
            N,
            "gsm8k",
            "Grade-school math word problems (Cobbe et al. 2021)",
            hub=HubSource("openai/gsm8k", "main"),
        ),
        TaskSpec(
            "svamp",
            N,
            "svamp",
            "SVAMP: variations of simple arithmetic word problems",
            hub=HubSource("ChilleD/SVAMP"),
        ),
        TaskSpec("multiarith", N, "mawps", "MultiArith (MAWPS): multi-step arithmetic", ("multi_arith",)),
        TaskSpec("addsub", N, "mawps", "AddSub (MAWPS): addition and subtraction", ("add_sub",)),
        TaskSpec("single_eq", N, "mawps", "SingleEq (MAWPS): single-equation problems", ("singleeq",)),
        TaskSpec(
            "aqua",
            MC,
            "aqua",
            "AQuA-RAT: algebra questions with five options",
            ("aqua_rat",),
            hub=HubSource("deepmind/aqua_rat", "raw"),
        ),
        TaskSpec(
            "commonsense_qa",
            MC,
            "commonsense_qa",
            "CommonsenseQA: five-way commonsense questions",
            ("csqa", "commonsenseqa"),
            hub=HubSource("tau/commonsense_qa"),
        ),
        TaskSpec(
            "strategy_qa",
            YN,
            "bigbench",
            "StrategyQA (BIG-bench): implicit multi-hop yes/no",
            ("strategyqa",),
        ),
        TaskSpec(
            "date_understanding",
            MC,
            "bigbench",
            "Date Understanding (BIG-bench)",
            ("date",),
            shuffle_choices=True,
        ),
        TaskSpec(
            "tracking_shuffled_objects",
            MC,
            "bigbench",
            "Tracking Shuffled Objects, 3 objects (BIG-bench)",
            ("shuffled_objects", "tracking"),
        ),
        TaskSpec("coin_flip", YN, "symbolic", "Coin Flip, 4 flips (zero-shot-CoT)"),
        TaskSpec(
            "last_letter_concatenation",
            TEXT,
            "symbolic",
            "Last Letter Concatenation, 4 words (zero-shot-CoT)",
            ("last_letters",),
        ),
        TaskSpec(
            "asdiv",
            N,
            "asdiv",
            "ASDiv: diverse math word problems (numeric answers only)",
            skip_other_answer_types=True,
        ),
        TaskSpec("procedural", N, "procedural", "Generated multi-step arithmetic word problems with exact answers"),
    )
}

_ALIASES = {alias: spec.name for spec in KNOWN_TASKS.values() for alias in spec.aliases}


def known_task(name: str) -> TaskSpec | None:
    key = name.strip().lower().replace("-", "_")
    return KNOWN_TASKS.get(key) or KNOWN_TASKS.get(_ALIASES.get(key, ""))


def check_task_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_TASK_NAME_CHARS or "\x00" in name:
        raise CurationError(f"a task name is 1 to {MAX_TASK_NAME_CHARS} characters of text, not {name[:40]!r}")


def resolve_task(name: str, *, format: str | None, answer_type: AnswerType | None) -> TaskSpec:
    """The spec for a known task, or one built from the user's --format/--answer-type for a new task."""
    spec = known_task(name)
    if spec is not None:
        if answer_type is not None and answer_type is not spec.answer_type:
            raise CurationError(f"task {spec.name} has {spec.answer_type} answers, not {answer_type}")
        if format is not None and format != spec.format:
            spec = dataclasses.replace(spec, format=format)
        return spec
    check_task_name(name)
    if answer_type is None or format is None:
        known = ", ".join(sorted(KNOWN_TASKS))
        raise CurationError(
            f"unknown task {name!r}: give --format and --answer-type to define it, or use one of: {known}"
        )
    return TaskSpec(name, answer_type, format, f"user task read as {format}")
