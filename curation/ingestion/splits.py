"""Which split each record goes to: named on the command line, read from a Fine-tune-CoT split
file, or told by the file's name (train.jsonl, test.jsonl, dev_rand_split.jsonl)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from curation.errors import CurationError, InputError, shortened
from curation.models.task import SplitPurpose

_NATURAL = {
    "train": "train",
    "test": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "dev",
}
_TOKEN_SEPARATORS = re.compile(r"[^a-z0-9]+")
MAX_SPLIT_NAME_CHARS = 100  # the width of split.name


def named_split(name: str) -> str | None:
    """The one split a name tells by its whole words (runs of letters and digits), or None.

    "train", "gsm8k-train" and "train_rand_split" tell train; "dev_rand_split" tells dev;
    "trainval", "trained_on_test", "contest" and "devious" tell none (a word must be the split's
    name, not contain it), and neither does "train_test", which names two: guessing could put
    test data in training.
    """
    named = {_NATURAL[token] for token in _TOKEN_SEPARATORS.split(name.lower()) if token in _NATURAL}
    return named.pop() if len(named) == 1 else None


def natural_split(path: Path) -> str | None:
    """The split a file's name tells, by whole words of its name before the first dot (see
    `named_split`): "gsm8k-train.jsonl" is train, "trainee_eval.jsonl" none."""
    return named_split(path.name.split(".")[0])


def default_purpose(split: str) -> SplitPurpose:
    """Only a split whose name tells train by the same whole-word rule (`named_split`) may feed
    training unless the user says otherwise: "trainval" and "trained_on_test" are held out. When
    in doubt, a split is held out (the safe side of the no-evaluation-data-in-training rule)."""
    return SplitPurpose.train if named_split(split) == "train" else SplitPurpose.eval


def split_name_problem(name: str) -> str | None:
    """Why `name` cannot be a split's name, or None: 1 to MAX_SPLIT_NAME_CHARS characters, with no
    space or other blank (a name is typed on command lines and matched whole)."""
    if not name or len(name) > MAX_SPLIT_NAME_CHARS:
        return f"split name {shortened(name, 40)!r} is {len(name):,} characters; 1 to {MAX_SPLIT_NAME_CHARS} fit"
    if any(character.isspace() for character in name):
        return f"split name {shortened(name, 40)!r} has a space or another blank; join its words with - or _"
    return None


class FtcotSplit:
    """A Fine-tune-CoT split file: {"train": [index, ...], "test": [index, ...]}.

    The indices point into Fine-tune-CoT's unified dataset, which is the benchmark's files
    concatenated in their canonical order (train before test): give the files in that order.
    """

    def __init__(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(str(path), f"cannot read split file: {error}") from None
        if not isinstance(document, dict) or not all(
            isinstance(v, list) and all(isinstance(i, int) for i in v) for v in document.values()
        ):
            raise InputError(str(path), 'expected {"<split>": [index, ...], ...}')
        self.path = path
        self.split_of: dict[int, str] = {}
        for split, indices in document.items():
            problem = split_name_problem(split)
            if problem is None and "\x00" in split:
                problem = f"split name {shortened(split, 40)!r} is not text"
            if problem is not None:
                raise InputError(str(path), problem)
            for index in indices:
                if index in self.split_of:
                    raise InputError(str(path), f"index {index} is in both {self.split_of[index]} and {split}")
                self.split_of[index] = split
        self.max_index = max(self.split_of, default=-1)

    def check_covered(self, records_read: int, sources: list[str]) -> None:
        if self.max_index >= records_read:
            raise CurationError(
                f"{self.path} refers to record {self.max_index}, but only {records_read:,} records were read "
                f"from {', '.join(sources)}; Fine-tune-CoT indexes the concatenation of all of a benchmark's "
                "files (train first), so pass every file, in that order"
            )
