"""Causal LMs through transformers: float32 on CPU, float16/bfloat16 on CUDA, no remote code.

Our own token loop (KV cache, `t2i.llm.sampling`) gives streaming, cancelling, stop strings and a
per-seed answer that does not depend on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2i.cancel import CancelToken, check
from t2i.llm.base import Completion, LLMError, Message, SamplingSettings, TextAccumulator, TokenCallback

DTYPES = ("float32", "float16", "bfloat16")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def refuse_pickles(folder: Path) -> None:
    """LLMError when a local model folder's weights are pickles only (no safetensors): unpickling can run code,
    so t2i never does it; `t2i convert` writes the safetensors file."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").exists():
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise LLMError(f"{folder}: its weights are pickles ({', '.join(pickles[:3])}) and t2i does not load pickles "
                       f"(they can run code); convert them: `t2i convert {folder / pickles[0]} "
                       f"{folder / 'model.safetensors'}`")


def _quantisation(config: Any) -> str | None:
    """'4-bit'/'8-bit' when the config carries a bitsandbytes quantisation, else None."""
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return None
    d = qc if isinstance(qc, Mapping) else getattr(qc, "to_dict", lambda: vars(qc))()
    if d.get("load_in_4bit"):
        return "4-bit"
    if d.get("load_in_8bit"):
        return "8-bit"
    if str(d.get("quant_method", "")).lower() == "bitsandbytes":
        return "bitsandbytes"
    return None


def cache_argument(model: Any) -> str:
    """The name the model's forward takes its KV cache under: `cache` from transformers 5.24 on (where
    `past_key_values` is deprecated and warns on every call), `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def pick_device_dtype(device: str, dtype: str | None) -> tuple[str, str]:
    """('cpu'|'cuda[:n]', dtype name); raises on half precision for the CPU."""
    import torch

    if dtype is not None and dtype not in DTYPES:
        raise LLMError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not (device == "cpu" or device.startswith("cuda")):
        raise LLMError(f"device must be auto, cpu or cuda[:n], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LLMError("device cuda was asked for but torch sees no CUDA device")
    if device == "cpu":
        if dtype not in (None, "float32"):
            raise LLMError(f"{dtype} is not used on the CPU (slow and lossy there); t2i runs language models "
                           "in float32 on the CPU")
        return device, "float32"
    if dtype is None:
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return device, dtype


class TransformersLLM:
    """A loaded transformers causal LM.  Build it with `load` or from a model and tokenizer you own."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "transformers") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(i) for i in [*ids, tokenizer.eos_token_id] if i is not None}
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)

    @classmethod
    def load(cls, source: str | Path, device: str = "auto", dtype: str | None = None,
             local_files_only: bool | None = None, name: str | None = None) -> TransformersLLM:
        """Load a hub id or a local folder; bitsandbytes checkpoints load on CUDA only."""
        import os

        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if local_files_only is None:
            local_files_only = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        if Path(source).is_dir():
            refuse_pickles(Path(source))
        common = {"trust_remote_code": False, "local_files_only": local_files_only}
        try:
            config = AutoConfig.from_pretrained(str(source), **common)
        except (OSError, ValueError) as e:
            raise LLMError(f"cannot read the model config of {source!s}: {e}. A hub id needs network once "
                           f"(`huggingface-cli download {source}`); a local folder needs config.json") from e
        device, dtype = pick_device_dtype(device, dtype)
        kwargs: dict[str, Any] = {**common, "dtype": getattr(torch, dtype), "use_safetensors": True}
        quant = _quantisation(config)
        if quant is not None:
            if device == "cpu":
                raise LLMError(f"{source!s} is a bitsandbytes {quant} checkpoint: it runs on CUDA only. On the "
                               "CPU use the full-precision model or a GGUF file with the llama.cpp backend")
            try:
                import bitsandbytes  # noqa: F401
            except ImportError as e:
                raise LLMError(f"{source!s} is a bitsandbytes {quant} checkpoint: pip install bitsandbytes") from e
            kwargs["device_map"] = {"": device}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source), **common)
            model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
        except (OSError, ValueError) as e:
            raise LLMError(f"cannot load {source!s}: {e}") from e
        if quant is None:
            model = model.to(device)
        return cls(model, tokenizer, name or str(source))

    @classmethod
    def load_gguf(cls, path: str | Path, name: str | None = None) -> TransformersLLM:
        """A GGUF file dequantised into a float32 transformers model on the CPU (needs the `gguf` package)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        try:
            import gguf  # noqa: F401
        except ImportError as e:
            raise LLMError("reading a GGUF file with transformers needs the gguf package: pip install gguf") from e
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
        except (OSError, ValueError, RuntimeError) as e:
            raise LLMError(f"transformers could not read {path}: {e}") from e
        return cls(model, tokenizer, name or path.name)

    # ------------------------------------------------------------------ the contract

    def complete(self, prompt: str, settings: SamplingSettings, on_token: TokenCallback | None = None,
                 cancel: CancelToken | None = None) -> Completion:
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids  # (1, n), BOS as the tokenizer adds it
        return self._run(ids, settings, on_token, cancel)

    def chat(self, messages: Sequence[Message], settings: SamplingSettings, on_token: TokenCallback | None = None,
             cancel: CancelToken | None = None) -> Completion:
        if not getattr(self.tokenizer, "chat_template", None):
            raise LLMError(f"{self.name} has no chat template; use complete() with a prompt")
        text = self.tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                                  add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        return self._run(ids, settings, on_token, cancel)

    def _run(self, ids: Any, settings: SamplingSettings, on_token: TokenCallback | None,
             cancel: CancelToken | None = None) -> Completion:
        import torch

        from t2i.llm.sampling import sample_token

        n_prompt = ids.shape[1]
        budget = settings.max_tokens
        if self.context:
            if n_prompt >= self.context:
                raise LLMError(f"the prompt is {n_prompt} tokens long; {self.name} takes at most {self.context}")
            budget = min(budget, self.context - n_prompt)
        device = self.model.device
        gen = torch.Generator().manual_seed(settings.seed)
        acc = TextAccumulator(settings, on_token)
        anchor = ids[0, -1:].tolist()  # decode with the last prompt token so leading spaces survive
        anchor_text = self.tokenizer.decode(anchor, skip_special_tokens=False)
        new: list[int] = []
        shown = ""
        reason = "length"
        cache = cache_argument(self.model)
        check(cancel, "the prompt")  # before any model call
        with torch.inference_mode():
            out = self.model(input_ids=ids.to(device), use_cache=True)
            history = ids[0]
            for i in range(budget):
                check(cancel, f"token {i + 1} of at most {budget}")  # once per token, before sampling it
                tok = sample_token(out.logits[0, -1], history, settings, gen)
                if tok in self.eos_ids:
                    reason = "stop"
                    break
                new.append(tok)
                history = torch.cat([history, torch.tensor([tok])])
                text = self.tokenizer.decode(anchor + new, skip_special_tokens=False)[len(anchor_text):]
                if not text.endswith("\ufffd") and text.startswith(shown):  # whole characters only
                    piece, shown = text[len(shown):], text
                    if piece and not acc.add(piece):
                        break
                out = self.model(input_ids=torch.tensor([[tok]], device=device), use_cache=True,
                                 **{cache: getattr(out, cache)})
        return acc.finish(reason, n_prompt_tokens=n_prompt, n_tokens=len(new))
