"""Continuations of many contexts at once from a transformers causal LM, with each token's log-probability.

One `generate` call per batch, left-padded, across every beam of every problem. Sampling is done by
a logits processor of ours (the Gumbel-max trick: the argmax of log-softmax / T plus Gumbel noise is
a draw from the tempered softmax), so the same processor sees the raw logits and records the
model's own log-probability of the token it picks, without keeping a (batch, vocabulary) tensor
per step. `generate` then runs greedy over the one-hot scores it returns.

No KV cache is reused between calls: each call re-encodes its contexts (simple, and on a GPU the
prefill is cheap next to the sandbox and the decoding steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from workers.teachers.cpu_threads import generation_threads

Ending = Literal["newline", "eos", "stop", "length"]


@dataclass(frozen=True)
class Continuation:
    """text: what was generated, cut at the first newline (kept) or stop string (dropped).
    rest: what the last token carried past the newline (often the next line's indentation).
    token_logprobs: the model's log-probability of each token it generated (untempered)."""

    text: str
    token_logprobs: tuple[float, ...]
    ending: Ending
    rest: str = ""

    @property
    def mean_logprob(self) -> float:
        return sum(self.token_logprobs) / len(self.token_logprobs) if self.token_logprobs else 0.0


class LineSource(Protocol):
    """What the searches need from a model: the next line of each context, or the whole rest."""

    def next_lines(self, contexts: Sequence[str], *, temperature: float, seed: int) -> list[Continuation]: ...

    def complete(
        self, contexts: Sequence[str], *, temperature: float, seed: int, stop: Sequence[str] = ()
    ) -> list[Continuation]: ...


class _Sampler:
    """A LogitsProcessor: picks each row's token (greedy at T = 0) and records its log-probability.
    With `ends_line` (a vocabulary mask of tokens holding a newline) it also marks the rows whose
    line just ended, for `_Done` to stop (transformers' stop_strings re-reads the whole vocabulary
    on every call, which costs more than the generation of one line)."""

    def __init__(self, torch: Any, temperature: float, seed: int, ends_line: Any = None) -> None:
        self._torch = torch
        self._temperature = temperature
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self._ends_line = ends_line
        self.done: Any = None
        self.picked: list[Any] = []  # per step: (token ids, log-probabilities), each of shape (batch,)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self._torch
        logprobs = torch.log_softmax(scores.float(), dim=-1)
        if self._temperature > 0:
            uniform = torch.rand(logprobs.shape, generator=self._generator, dtype=torch.float32)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7))).to(logprobs.device)
            choice = torch.argmax(logprobs / self._temperature + gumbel, dim=-1)
        else:
            choice = torch.argmax(logprobs, dim=-1)
        self.picked.append((choice.cpu(), logprobs.gather(1, choice[:, None])[:, 0].cpu()))
        if self._ends_line is not None:
            ended = self._ends_line[choice]
            self.done = ended if self.done is None else self.done | ended
        one_hot = torch.full_like(scores, float("-inf"))
        return one_hot.scatter(1, choice[:, None], 0.0)


class _Done:
    """A StoppingCriteria: rows whose line ended (see _Sampler), or whose text holds a stop string."""

    def __init__(self, sampler: _Sampler, tokenizer: Any, prompt_length: int, stop: tuple[str, ...]) -> None:
        self._sampler = sampler
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if self._sampler.done is not None:
            return self._sampler.done.clone()
        flags = []
        for row in input_ids[:, self._prompt_length :][:, -16:].tolist():
            tail = self._tokenizer.decode(row)
            flags.append(any(s in tail for s in self._stop))
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class TransformersLineSource:
    """A LineSource over a loaded model and tokenizer (the student)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_line_tokens: int = 96,
        max_program_tokens: int = 320,
        batch_size: int = 32,
    ) -> None:
        import torch

        self._torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_line_tokens = max_line_tokens
        self.max_program_tokens = max_program_tokens
        self.batch_size = batch_size
        self.generated_tokens = 0
        self.calls = 0
        vocabulary = int(model.get_output_embeddings().weight.shape[0])
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        mask = [("\n" in piece) for piece in pieces] + [False] * max(0, vocabulary - len(pieces))
        self._ends_line = torch.tensor(mask[:vocabulary], dtype=torch.bool, device=model.device)

    @classmethod
    def from_pretrained(cls, path: str, *, device: str = "auto", **options: Any) -> TransformersLineSource:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model = model.to(device)
        return cls(model, AutoTokenizer.from_pretrained(path), **options)

    def next_lines(self, contexts: Sequence[str], *, temperature: float, seed: int) -> list[Continuation]:
        return self._run(contexts, temperature, seed, stop=(), lines=True, max_new=self.max_line_tokens)

    def complete(
        self, contexts: Sequence[str], *, temperature: float, seed: int, stop: Sequence[str] = ()
    ) -> list[Continuation]:
        return self._run(contexts, temperature, seed, stop=tuple(stop), lines=False, max_new=self.max_program_tokens)

    def _run(
        self,
        contexts: Sequence[str],
        temperature: float,
        seed: int,
        *,
        stop: tuple[str, ...],
        lines: bool,
        max_new: int,
    ) -> list[Continuation]:
        results: list[Continuation] = []
        for start in range(0, len(contexts), self.batch_size):
            chunk = contexts[start : start + self.batch_size]
            results.extend(self._batch(chunk, temperature, seed + start, stop=stop, lines=lines, max_new=max_new))
        return results

    def _batch(
        self,
        contexts: Sequence[str],
        temperature: float,
        seed: int,
        *,
        stop: tuple[str, ...],
        lines: bool,
        max_new: int,
    ) -> list[Continuation]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        torch = self._torch
        encoded = self.tokenizer(list(contexts), return_tensors="pt", padding=True).to(self.model.device)
        sampler = _Sampler(torch, temperature, seed, self._ends_line if lines else None)
        options: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": False,
            "logits_processor": LogitsProcessorList([sampler]),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            # Our sampler replaces these; a generation_config that sets them would only warn.
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        if lines or stop:
            done = _Done(sampler, self.tokenizer, encoded["input_ids"].shape[1], stop)
            options["stopping_criteria"] = StoppingCriteriaList([done])
        with torch.inference_mode(), generation_threads(str(self.model.device)):
            output = self.model.generate(**encoded, **options)
        self.calls += 1
        new_tokens = output[:, encoded["input_ids"].shape[1] :].cpu()
        picked_logprobs = torch.stack([lp for _, lp in sampler.picked], dim=1) if sampler.picked else None
        continuations = []
        for row in range(len(contexts)):
            continuations.append(self._continuation(new_tokens[row].tolist(), picked_logprobs, row, stop, lines))
        return continuations

    def _continuation(
        self, tokens: list[int], logprobs: Any, row: int, stop: tuple[str, ...], lines: bool
    ) -> Continuation:
        eos = self.tokenizer.eos_token_id
        kept: list[int] = []
        ending: Ending = "length"
        for token in tokens:
            if token == eos:
                ending = "eos"
                break
            kept.append(token)
            piece = self.tokenizer.decode([token])
            if lines and "\n" in piece:
                ending = "newline"
                break
            if stop and any(s in self.tokenizer.decode(kept) for s in stop):
                ending = "stop"
                break
        counted = len(kept) + (1 if ending == "eos" else 0)
        self.generated_tokens += counted
        token_logprobs = tuple(float(x) for x in logprobs[row, :counted].tolist()) if logprobs is not None else ()
        text = str(self.tokenizer.decode(kept, skip_special_tokens=True))
        rest = ""
        if ending == "newline":
            text, _, rest = text.partition("\n")
            text += "\n"
        elif ending == "stop":
            cut = min(text.find(s) for s in stop if s in text)
            text = text[:cut]
        return Continuation(text, token_logprobs, ending, rest)
