"""A LineSource that writes programs from a script, for tests of the search logic (pruning, dedupe,
caching) where what matters is which lines arrive, not a model's taste.

Each prompt has candidate programs, each with a per-token log-probability. For a context (prompt +
program so far) the candidates whose lines match the program so far are the possible next lines;
row i of a call takes the (seed + i)-th of them in turn, so different beams get different lines
the way sampling would give them. A candidate that has no line left ends with EOS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trainer.decoding.generation import Continuation


@dataclass(frozen=True)
class Candidate:
    program: str
    logprob: float = -1.0  # of every token; a line counts as one token per word
    line_logprobs: tuple[float, ...] = ()  # if given: line i is one token of this log-probability


class ScriptedLines:
    def __init__(self, scripts: Mapping[str, Sequence[Candidate]]) -> None:
        self.scripts = scripts
        self.contexts: list[str] = []
        self.calls = 0

    def _split(self, context: str) -> tuple[str, str]:
        for prompt in sorted(self.scripts, key=len, reverse=True):
            if context.startswith(prompt):
                return prompt, context[len(prompt) :]
        raise KeyError(f"no script for context {context[:60]!r}")

    def next_lines(self, contexts: Sequence[str], *, temperature: float, seed: int) -> list[Continuation]:
        self.calls += 1
        out = []
        for row, context in enumerate(contexts):
            self.contexts.append(context)
            prompt, written = self._split(context)
            matching = [c for c in self.scripts[prompt] if c.program.startswith(written)]
            if not matching:
                out.append(Continuation("", (), "eos"))
                continue
            candidate = matching[(seed + row) % len(matching)]
            remaining = candidate.program[len(written) :]
            if not remaining:
                out.append(Continuation("", (candidate.logprob,), "eos"))
                continue
            line, newline, _ = remaining.partition("\n")
            if candidate.line_logprobs:
                logprobs: tuple[float, ...] = (candidate.line_logprobs[written.count("\n")],)
            else:
                logprobs = (candidate.logprob,) * max(1, len(line.split()))
            out.append(Continuation(line + newline, logprobs, "newline" if newline else "eos"))
        return out

    def complete(
        self, contexts: Sequence[str], *, temperature: float, seed: int, stop: Sequence[str] = ()
    ) -> list[Continuation]:
        self.calls += 1
        out = []
        for row, context in enumerate(contexts):
            prompt, _ = self._split(context)
            candidates = self.scripts[prompt]
            candidate = candidates[(seed + row) % len(candidates)]
            tokens = max(1, len(candidate.program.split()))
            out.append(Continuation(candidate.program, (candidate.logprob,) * tokens, "eos"))
        return out
