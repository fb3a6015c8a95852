"""A learned verifier: question + rationale → P(correct), a sequence-classification head (two
labels) on a small causal LM, fine-tuned from labelled rationales, correct and incorrect.

Trained from a list of examples, or from the labelled members of a snapshot (a snapshot made with
`verdict: any` holds correct and incorrect rationales): `curation verifier train --snapshot NAME@N`.
The trained verifier is a folder: the model and tokenizer, and `verifier.json` (what it was
trained from and how, its training loss and accuracy), written beside its target and renamed, so
a crash never leaves half a verifier. It scores whole programs for best-of-N and program prefixes
for step-verified decoding (trainer/decoding/scorers.py: VerifierScorer); it is trained on whole
rationales only, so on prefixes it is extrapolating.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curation.errors import CurationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TEXT_FORMAT = "Question: {question}\nSolution:\n{rationale}"
MANIFEST = "verifier.json"


@dataclass(frozen=True)
class VerifierExample:
    question: str
    rationale: str
    correct: bool
    source: str = ""  # where it came from (a rationale id), for error messages


@dataclass(frozen=True)
class VerifierTraining:
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 5e-5
    max_length: int = 512
    seed: int = 0


@dataclass(frozen=True)
class TrainedVerifier:
    path: Path
    examples: int
    correct: int
    losses: tuple[float, ...]  # mean loss per epoch
    train_accuracy: float


def verifier_text(question: str, rationale: str) -> str:
    return TEXT_FORMAT.format(question=question.strip(), rationale=rationale)


@dataclass(frozen=True)
class SnapshotExamples:
    snapshot: str  # NAME@N, the exact version read
    examples: list[VerifierExample]
    unlabelled: int  # members with no label: left out


def examples_from_snapshot(session: Session, ref: str) -> SnapshotExamples:
    """The labelled members of a snapshot (`NAME@N`) as verifier examples: a member labelled
    `correct` is a positive; `incorrect`, `error` and `unparseable` are negatives (a program that
    fails is a wrong rationale). The label is the one the snapshot recorded for the member."""
    from sqlalchemy import select

    from curation.models import Label, Problem, Rationale, SnapshotMember, Verdict
    from curation.snapshots.create import resolve_snapshot

    snapshot = resolve_snapshot(session, ref)
    rows = session.execute(
        select(Rationale.id, Problem.question, Rationale.body, Label.verdict)
        .select_from(SnapshotMember)
        .join(Rationale, Rationale.id == SnapshotMember.rationale_id)
        .join(Problem, Problem.id == SnapshotMember.problem_id)
        .outerjoin(Label, Label.id == SnapshotMember.label_id)
        .where(SnapshotMember.snapshot_id == snapshot.id)
        .order_by(SnapshotMember.position)
    ).all()
    examples = [
        VerifierExample(question, body, verdict is Verdict.correct, f"rationale {rationale_id}")
        for rationale_id, question, body, verdict in rows
        if verdict is not None
    ]
    unlabelled = sum(1 for row in rows if row.verdict is None)
    return SnapshotExamples(f"{snapshot.name}@{snapshot.version}", examples, unlabelled)


def _check(examples: Sequence[VerifierExample]) -> None:
    if not examples:
        raise CurationError("no labelled rationales to train a verifier on")
    for i, example in enumerate(examples):
        if not example.question.strip() or not example.rationale.strip():
            name = example.source or f"example {i + 1}"
            raise CurationError(f"{name}: a verifier example needs a question and a rationale")
    correct = sum(e.correct for e in examples)
    if correct in (0, len(examples)):
        kind = "correct" if correct else "incorrect"
        raise CurationError(
            f"all {len(examples)} labelled rationales are {kind}: a verifier needs both correct and incorrect ones"
        )


def _load_classifier(base: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def train_verifier(
    base: Path,
    examples: Sequence[VerifierExample],
    target: Path,
    config: VerifierTraining | None = None,
    *,
    trained_from: str = "examples",
) -> TrainedVerifier:
    """Fine-tune a classifier from `base` (a causal LM folder) on `examples`; write it to `target`.
    `trained_from` says where the examples came from (`snapshot NAME@N`), for its manifest."""
    import torch

    config = config or VerifierTraining()
    _check(examples)
    torch.manual_seed(config.seed)
    model, tokenizer = _load_classifier(base)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    texts = [verifier_text(e.question, e.rationale) for e in examples]
    labels = [int(e.correct) for e in examples]
    order = list(range(len(examples)))
    shuffle = random.Random(config.seed)
    losses = []
    for _epoch in range(config.epochs):
        shuffle.shuffle(order)
        total, batches = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=config.max_length,
            )
            output = model(**encoded, labels=torch.tensor([labels[i] for i in batch]))
            output.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            total += float(output.loss.detach())
            batches += 1
        losses.append(total / batches)
    model.eval()
    verifier = LearnedVerifier(model, tokenizer, config.max_length)
    probabilities = verifier.score([e.question for e in examples], [e.rationale for e in examples])
    accuracy = sum((p >= 0.5) == e.correct for p, e in zip(probabilities, examples, strict=True)) / len(examples)
    manifest = {
        "base": str(base),
        "trained_from": trained_from,
        "text_format": TEXT_FORMAT,
        "examples": len(examples),
        "correct": sum(labels),
        "training": asdict(config),
        "losses": losses,
        "train_accuracy": accuracy,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrainedVerifier(target, len(examples), sum(labels), tuple(losses), accuracy)


class LearnedVerifier:
    """Scores (question, rationale) pairs: P(correct) from the classifier's softmax."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 512, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.scored = 0

    @classmethod
    def load(cls, path: Path) -> LearnedVerifier:
        if not (path / MANIFEST).is_file():
            raise CurationError(f"{path} is not a trained verifier (no {MANIFEST})")
        manifest = json.loads((path / MANIFEST).read_text())
        model, tokenizer = _load_classifier(path)
        return cls(model, tokenizer, int(manifest["training"]["max_length"]))

    def score(self, questions: Sequence[str], rationales: Sequence[str]) -> list[float]:
        import torch

        texts = [verifier_text(q, r) for q, r in zip(questions, rationales, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.model.device)
            with torch.inference_mode():
                logits = self.model(**encoded).logits
            out.extend(float(p) for p in torch.softmax(logits.float(), dim=-1)[:, 1].tolist())
        self.scored += len(texts)
        return out
