"""Open a language model by registered name, hub id, local folder, GGUF file or server URL.

The registry-aware half of LLM loading: names resolve through a `ModelRegistry`, then `t2i.llm.loading`
opens what they point at (that module knows no registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from t2i.llm.base import LLM, LLMError
from t2i.llm.loading import check_options, is_url, open_hub, open_local, open_url
from t2i.registry import ModelError, ModelRegistry


def load_llm(name: str, registry: ModelRegistry | None = None, options: Mapping[str, Any] | None = None) -> LLM:
    """A loaded LLM.  `options`: backend (auto|transformers|llama.cpp), device, dtype (transformers);
    n_ctx, n_threads, n_gpu_layers (-1 = all), gguf_file (llama.cpp); model, api_key_env, timeout (seconds per
    read), start_deadline (seconds until the first token), deadline (seconds per call), retries (HTTP URL).

    Rules: an http(s) URL -> OpenAI-compatible client; a .gguf file -> llama.cpp (backend=transformers
    dequantises it into a float32 transformers model instead); a folder with
    config.json -> transformers; a registered hub model -> transformers, or its GGUF file with
    backend=llama.cpp.  `registry` defaults to `t2i.backends.default_registry()`.
    """
    opts = check_options(options)
    if is_url(name):
        return open_url(name, opts)
    if registry is None:
        from t2i.backends import default_registry

        registry = default_registry()
    try:
        resolved = registry.resolve(name)
    except ModelError as e:
        raise LLMError(str(e)) from e
    spec = resolved.spec
    if spec.kind != "llm":
        raise LLMError(f"{name!r} is a {spec.kind} image model, not a language model")
    if resolved.location is None:  # a hub model: transformers, or its GGUF file for llama.cpp
        return open_hub(spec.source, opts, name=spec.name, gguf_file=spec.files[0] if spec.files else None)
    return open_local(resolved.location, opts, name=spec.name, label=name)
