"""A teacher run in-process with transformers: batched, left-padded generation on CPU or GPU.

Device "auto" picks CUDA when present; on a GPU the model runs in bfloat16, on a CPU in float32.
Several samples of one prompt are generated as separate rows of a batch. With a seed, sample i
draws its tokens from a random stream of its own, seeded with seed + i (as the HTTP backend
seeds its requests), so what a sample gets does not depend on which other rows share its batch:
a resumed run that asks only for the missing samples gets the tokens a full run would have. (The
logits themselves can still differ in the last bits between batch shapes, which on rare near-ties
changes a token.) A batch that fails (out of memory, say) is returned as failed results; the run
goes on.

An encoder-decoder model (T5, CodeT5: a PaD student) is loaded as one when its config says so:
the prompt goes to the encoder (padded on the right, as encoders are trained; the attention
mask hides the padding either way), and the output is the decoder's sequence after its start
token, with no prompt to cut off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from workers.teachers.base import Completion, GenerationRequest, GenerationResult, SamplingParams
from workers.teachers.cpu_threads import generation_threads


class _SeededRows:
    """Sampling by the Gumbel-max trick with one generator per row: the argmax of the warped
    scores plus Gumbel noise is a draw from their softmax, so greedy decoding over these scores
    samples, and each row's noise comes only from its own seed and its step."""

    def __init__(self, torch: Any, seeds: list[int]) -> None:
        self._torch = torch
        self._generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self._torch
        vocabulary = scores.shape[-1]
        uniform = torch.stack([torch.rand(vocabulary, generator=g, dtype=torch.float64) for g in self._generators])
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
        return scores.float() + gumbel.to(device=scores.device, dtype=torch.float32)


class LocalTransformersTeacher:
    def __init__(
        self,
        model_path: str,
        *,
        device: str = "auto",
        batch_size: int = 8,
        chat: bool = True,
        dtype: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self._torch = torch
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if dtype is None:
            dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
        self.seq2seq = bool(getattr(AutoConfig.from_pretrained(model_path), "is_encoder_decoder", False))
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="right" if self.seq2seq else "left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        loader: Any = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        model: Any = loader.from_pretrained(model_path, dtype=getattr(torch, dtype))
        self.model = model.to(device).eval()
        self.batch_size = batch_size
        self.chat = chat and getattr(self.tokenizer, "chat_template", None) is not None

    def close(self) -> None:
        pass

    def _text(self, request: GenerationRequest) -> str:
        if self.chat:
            prompt = request.prompt
            # Zero-shot-CoT's second stage continues the assistant's own turn rather than answering it.
            continues = prompt.continues_assistant
            rendered = self.tokenizer.apply_chat_template(
                prompt.messages(),
                tokenize=False,
                add_generation_prompt=not continues,
                continue_final_message=continues,
            )
            return str(rendered)
        return request.prompt.text

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[GenerationResult]:
        rows = [(request, sample) for request in requests for sample in request.samples]
        collected: dict[int, list[Completion]] = {}
        usage: dict[int, list[float]] = {}  # request index -> [prompt tokens, completion tokens, latency ms]
        index_of = {id(r): i for i, r in enumerate(requests)}
        failed: set[int] = set()
        for start in range(0, len(rows), self.batch_size):
            if cancel is not None and cancel.is_set():
                return
            batch = [(r, s) for r, s in rows[start : start + self.batch_size] if index_of[id(r)] not in failed]
            if not batch:
                continue
            try:
                completions, prompt_tokens, completion_tokens, elapsed = self._generate_batch(batch, params)
            except Exception as error:  # out of memory, a broken prompt: a result to record
                for request in dict.fromkeys(r for r, _ in batch):
                    failed.add(index_of[id(request)])
                    collected.pop(index_of[id(request)], None)
                    yield GenerationResult(request, error=f"{type(error).__name__}: {error}")
                continue
            for (request, _sample), completion, p_tokens, c_tokens in zip(
                batch, completions, prompt_tokens, completion_tokens, strict=True
            ):
                i = index_of[id(request)]
                collected.setdefault(i, []).append(completion)
                stats = usage.setdefault(i, [0, 0, 0.0])
                stats[0] += p_tokens
                stats[1] += c_tokens
                stats[2] += elapsed
                if len(collected[i]) == len(request.samples):
                    yield GenerationResult(
                        request, collected.pop(i), int(stats[0]), int(stats[1]), stats[2], attempts=1
                    )

    def _generate_batch(
        self, batch: list[tuple[GenerationRequest, int]], params: SamplingParams
    ) -> tuple[list[Completion], list[int], list[int], float]:
        torch = self._torch
        started = time.perf_counter()
        encoded = self.tokenizer([self._text(r) for r, _ in batch], return_tensors="pt", padding=True).to(self.device)
        options: dict[str, Any] = {
            "max_new_tokens": params.max_tokens or 256,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0 and params.seed is not None:
            from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

            processors: list[Any] = [TemperatureLogitsWarper(params.temperature)]
            if params.top_p is not None:
                processors.append(TopPLogitsWarper(params.top_p))
            processors.append(_SeededRows(torch, [params.seed + sample for _, sample in batch]))
            options.update(do_sample=False, logits_processor=LogitsProcessorList(processors))
        elif params.temperature > 0:
            options.update(do_sample=True, temperature=params.temperature)
            if params.top_p is not None:
                options["top_p"] = params.top_p
        else:
            options["do_sample"] = False
        if params.stop:
            options.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode(), generation_threads(self.device):
            output = self.model.generate(**encoded, **options)
        # A decoder's output starts with its start token; a causal LM's with the (left-padded) prompt.
        new_tokens = output[:, 1:] if self.seq2seq else output[:, encoded["input_ids"].shape[1] :]
        completions, completion_tokens = [], []
        for row in new_tokens:
            real = row[row != self.tokenizer.pad_token_id]
            text = str(self.tokenizer.decode(real, skip_special_tokens=True))
            finish = "stop" if len(real) < len(row) or self.tokenizer.eos_token_id in real.tolist() else "length"
            for stop in params.stop:
                if stop in text:
                    text, finish = text.split(stop, 1)[0], "stop"
            completions.append(Completion(text, finish))
            completion_tokens.append(len(real))
        prompt_tokens = [int(n) for n in encoded["attention_mask"].sum(dim=1).tolist()]
        elapsed = (time.perf_counter() - started) * 1000
        return completions, prompt_tokens, completion_tokens, elapsed / len(batch)
