"""GGUF models through llama-cpp-python (the optional `llama` extra)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from t2i.cancel import CancelToken, check
from t2i.llm.base import Completion, LLMError, Message, SamplingSettings, TextAccumulator, TokenCallback


def _sampling_kwargs(s: SamplingSettings) -> dict[str, Any]:
    """Our settings in llama-cpp-python's names (its top_k 0 and top_p 1 also mean 'off')."""
    return {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
            "repeat_penalty": s.repetition_penalty, "max_tokens": s.max_tokens, "seed": s.seed,
            "stop": list(s.stop) or None}


class LlamaCppLLM:
    """A loaded GGUF model.  `n_threads` None = llama.cpp's choice; `n_gpu_layers` 0 = CPU only."""

    def __init__(self, llama: Any, name: str) -> None:
        self.llama = llama
        self.name = name

    @classmethod
    def load(cls, path: str | Path, n_ctx: int = 2048, n_threads: int | None = None, n_gpu_layers: int = 0,
             name: str | None = None) -> LlamaCppLLM:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise LLMError("GGUF models need llama-cpp-python: pip install 't2i[llama]' "
                           "(it compiles llama.cpp on install, a few minutes)") from e
        path = Path(path).expanduser()
        if not path.is_file():
            raise LLMError(f"{path}: no such GGUF file")
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise LLMError(f"{path}: not a GGUF file (bad magic bytes)")
        try:
            llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads or min(8, os.cpu_count() or 1),
                          n_gpu_layers=n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise LLMError(f"llama.cpp could not load {path}: {e}") from e
        return cls(llama, name or path.name)

    def complete(self, prompt: str, settings: SamplingSettings, on_token: TokenCallback | None = None,
                 cancel: CancelToken | None = None) -> Completion:
        n_prompt = len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        self._check_context(n_prompt)
        check(cancel, "the prompt")
        chunks = self.llama.create_completion(prompt, stream=True, **_sampling_kwargs(settings))
        return self._drain(chunks, lambda c: c["choices"][0].get("text", ""), settings, on_token, n_prompt, cancel)

    def chat(self, messages: Sequence[Message], settings: SamplingSettings, on_token: TokenCallback | None = None,
             cancel: CancelToken | None = None) -> Completion:
        check(cancel, "the prompt")
        chunks = self.llama.create_chat_completion([{"role": m.role, "content": m.content} for m in messages],
                                                   stream=True, **_sampling_kwargs(settings))
        return self._drain(chunks, lambda c: c["choices"][0].get("delta", {}).get("content") or "", settings,
                           on_token, 0, cancel)

    def _check_context(self, n_prompt: int) -> None:
        n_ctx = self.llama.n_ctx()
        if n_prompt >= n_ctx:
            raise LLMError(f"the prompt is {n_prompt} tokens long; the context is {n_ctx} (load with a larger n_ctx)")

    @staticmethod
    def _drain(chunks: Iterator[dict], text_of: Any, settings: SamplingSettings, on_token: TokenCallback | None,
               n_prompt: int, cancel: CancelToken | None = None) -> Completion:
        acc = TextAccumulator(settings, on_token)
        reason, n = "length", 0
        try:
            for k, chunk in enumerate(chunks, 1):  # llama.cpp generates a token per chunk asked for
                check(cancel, f"chunk {k}")
                piece = text_of(chunk)
                n += 1 if piece else 0
                if piece and not acc.add(piece):
                    break
                finish = chunk["choices"][0].get("finish_reason")
                if finish:
                    reason = "stop" if finish == "stop" else "length"
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # stops llama.cpp when we end early
        return acc.finish(reason, n_prompt_tokens=n_prompt, n_tokens=n)
