"""Multi-step arithmetic word problems with exact answers, in any number.

For the quickstart on an offline machine and for load tests. Problem `i` of seed `s` depends only
on (s, i), so a run can be extended (`offset`) or sharded without changing what was made before.
Every answer is an integer computed exactly; each problem also carries a reference CoT rationale
and a reference PaD-style program (`def solution(): ... return result`) that returns the answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from curation.ingestion.formats import ParsedProblem

_PEOPLE = [
    ("Ava", "she", "her"),
    ("Liam", "he", "his"),
    ("Maya", "she", "her"),
    ("Noah", "he", "his"),
    ("Zoe", "she", "her"),
    ("Omar", "he", "his"),
    ("Ines", "she", "her"),
    ("Kenji", "he", "his"),
    ("Priya", "she", "her"),
    ("Mateo", "he", "his"),
    ("Lena", "she", "her"),
    ("Tariq", "he", "his"),
    ("Sofia", "she", "her"),
    ("Ethan", "he", "his"),
    ("Amara", "she", "her"),
    ("Felix", "he", "his"),
    ("Hana", "she", "her"),
    ("Diego", "he", "his"),
    ("Nadia", "she", "her"),
    ("Owen", "he", "his"),
]
_FRIENDS = ["Sam", "Rosa", "Jin", "Uma", "Leo", "Aisha", "Tom", "Mei", "Ravi", "Elif"]
_ITEMS = [
    "apples",
    "marbles",
    "stickers",
    "books",
    "cookies",
    "pencils",
    "stamps",
    "shells",
    "cards",
    "coins",
    "beads",
    "muffins",
    "crayons",
    "buttons",
    "tickets",
    "seeds",
    "bricks",
    "candles",
]
_FRACTIONS = {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}


@dataclass(frozen=True)
class _Step:
    sentence: str
    reasoning: str
    code: str
    value: int


class _Story:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.name, self.sub, self.poss = rng.choice(_PEOPLE)
        self.friend = rng.choice(_FRIENDS)
        self.items = rng.choice(_ITEMS)
        self.var = self.items

    def start(self) -> _Step:
        a = self.rng.randint(5, 120)
        return _Step(
            f"{self.name} has {a} {self.items}.",
            f"{self.name} starts with {a} {self.items}.",
            f"{self.var} = {a}",
            a,
        )

    def step(self, x: int) -> _Step:
        rng, sub, v = self.rng, self.sub, self.var
        options = ["buy", "receive", "packs", "grow"]
        if x > 2:
            options.append("give")
        divisors = [d for d in _FRACTIONS if x % d == 0 and x >= d]
        if divisors:
            options.append("share")
        kind = rng.choice(options)
        if kind == "buy":
            b = rng.randint(2, 60)
            return _Step(
                f"{sub.capitalize()} buys {b} more {self.items}.",
                f"After buying {b} more, {sub} has {x} + {b} = {x + b}.",
                f"{v} = {v} + {b}",
                x + b,
            )
        if kind == "receive":
            b = rng.randint(2, 40)
            return _Step(
                f"{self.friend} gives {self.name} {b} {self.items}.",
                f"{self.friend} gives {b}, so {sub} has {x} + {b} = {x + b}.",
                f"{v} = {v} + {b}",
                x + b,
            )
        if kind == "packs":
            k, c = rng.randint(2, 9), rng.randint(2, 12)
            return _Step(
                f"{sub.capitalize()} buys {k} packs with {c} {self.items} in each pack.",
                f"The packs hold {k} * {c} = {k * c}, so {sub} has {x} + {k * c} = {x + k * c}.",
                f"{v} = {v} + {k} * {c}",
                x + k * c,
            )
        if kind == "grow":
            m = rng.choice([2, 3])
            word = "doubles" if m == 2 else "triples"
            when = rng.choice(["Then", "Later", "The next week", "After a month"])
            return _Step(
                f"{when}, the number of {self.items} {sub} has {word}.",
                f"It {word}: {x} * {m} = {x * m}.",
                f"{v} = {v} * {m}",
                x * m,
            )
        if kind == "give":
            b = rng.randint(1, x - 1)
            return _Step(
                f"{sub.capitalize()} gives {b} {self.items} to {self.friend}.",
                f"After giving away {b}, {sub} has {x} - {b} = {x - b}.",
                f"{v} = {v} - {b}",
                x - b,
            )
        d = rng.choice(divisors)
        share = x // d
        return _Step(
            f"{sub.capitalize()} gives {_FRACTIONS[d]} of {self.poss} {self.items} to {self.friend}.",
            f"{_FRACTIONS[d].capitalize()} of {x} is {x} / {d} = {share}, so {sub} keeps {x} - {share} = {x - share}.",
            f"{v} = {v} - {v} // {d}",
            x - share,
        )

    def question(self, x: int) -> _Step:
        rng = self.rng
        boxes = [d for d in (2, 3, 4, 5, 6, 8, 10) if x % d == 0 and x > d]
        kind = rng.choice(["count", "sell"] + (["box"] if boxes else []))
        if kind == "count":
            return _Step(
                f"How many {self.items} does {self.name} have now?",
                f"{self.name} has {x} {self.items}.",
                f"result = {self.var}",
                x,
            )
        if kind == "sell":
            p = rng.randint(2, 9)
            return _Step(
                f"{self.name} sells every one of them for ${p} each. How many dollars does {self.sub} make?",
                f"Selling {x} at ${p} each makes {x} * {p} = {x * p} dollars.",
                f"result = {self.var} * {p}",
                x * p,
            )
        d = rng.choice(boxes)
        return _Step(
            f"{self.name} puts all of them into boxes of {d}. How many boxes does {self.sub} fill?",
            f"{x} / {d} = {x // d} boxes.",
            f"result = {self.var} // {d}",
            x // d,
        )


def procedural_problem(seed: int, index: int, *, min_steps: int = 2, max_steps: int = 5) -> ParsedProblem:
    # Large odd multiplier: (seed, index) pairs map to distinct generator seeds.
    rng = random.Random(seed * 1_000_000_007 + index)
    story = _Story(rng)
    steps = [story.start()]
    for _ in range(rng.randint(min_steps, max_steps)):
        steps.append(story.step(steps[-1].value))
    final = story.question(steps[-1].value)
    question = " ".join(s.sentence for s in steps) + " " + final.sentence
    rationale = " ".join(s.reasoning for s in (*steps, final)) + f" The answer is {final.value}."
    program = "def solution():\n" + "".join(f"    {s.code}\n" for s in (*steps, final)) + "    return result\n"
    return ParsedProblem(
        question=question,
        gold=final.value,
        source_id=f"{seed}:{index}",
        reference_rationale=rationale,
        meta={"steps": len(steps), "reference_program": program},
    )


def procedural_problems(count: int, *, seed: int = 0, offset: int = 0) -> Iterator[ParsedProblem]:
    for index in range(offset, offset + count):
        yield procedural_problem(seed, index)
