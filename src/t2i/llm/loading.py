"""Open a language model by registry name, hub id, local folder, GGUF file or server URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2i.llm.base import LLM, LLMError
from t2i.registry import ModelError, ModelRegistry

BACKENDS = ("auto", "transformers", "llama.cpp")
OPTIONS = {"backend", "device", "dtype", "n_ctx", "n_threads", "n_gpu_layers", "model", "api_key_env", "timeout",
           "start_deadline", "deadline", "retries", "gguf_file"}
# llama.cpp options: (lowest, highest) whole numbers; n_gpu_layers -1 = every layer
INT_OPTIONS = {"n_ctx": (16, 1 << 20), "n_threads": (1, 1024), "n_gpu_layers": (-1, 100_000)}


def check_int_option(option: str, value: object) -> int:
    """`value` as a whole number within INT_OPTIONS[option], else an LLMError naming the option."""
    low, high = INT_OPTIONS[option]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LLMError(f"LLM option {option} must be a whole number from {low} to {high}, got {value!r} "
                       f"(--llm-option {option}=N)")
    return value


def load_llm(name: str, registry: ModelRegistry | None = None, options: Mapping[str, Any] | None = None) -> LLM:
    """A loaded LLM.  `options`: backend (auto|transformers|llama.cpp), device, dtype (transformers);
    n_ctx, n_threads, n_gpu_layers (-1 = all), gguf_file (llama.cpp); model, api_key_env, timeout (seconds per
    read), start_deadline (seconds until the first token), deadline (seconds per call), retries (HTTP URL).

    Rules: an http(s) URL -> OpenAI-compatible client; a .gguf file -> llama.cpp (backend=transformers
    dequantises it into a float32 transformers model instead); a folder with
    config.json -> transformers; a registered hub model -> transformers, or its GGUF file with
    backend=llama.cpp.
    """
    opts = dict(options or {})
    unknown = sorted(set(opts) - OPTIONS)
    if unknown:
        raise LLMError(f"unknown LLM option(s) {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")
    backend = opts.get("backend", "auto")
    if backend not in BACKENDS:
        raise LLMError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    ints = {k: check_int_option(k, opts[k]) for k in INT_OPTIONS if opts.get(k) is not None}
    if name.startswith(("http://", "https://")):
        from t2i.llm import openai_llm as o

        api_key_env = opts.get("api_key_env", "T2I_LLM_API_KEY")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise LLMError(f"LLM option api_key_env must name an environment variable, got {api_key_env!r}")
        # the values are checked by the client, whose errors name the option
        return o.OpenAICompatibleLLM(name, model=str(opts.get("model", "default")), api_key_env=api_key_env,
                                     timeout=opts.get("timeout", o.DEFAULT_TIMEOUT),
                                     start_deadline=opts.get("start_deadline", o.DEFAULT_START_DEADLINE),
                                     deadline=opts.get("deadline", o.DEFAULT_DEADLINE),
                                     retries=opts.get("retries", o.DEFAULT_RETRIES))
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
    location = resolved.location
    gguf = location is not None and location.suffix.lower() == ".gguf"
    if backend == "llama.cpp" and location is None:  # a registered hub model's GGUF file
        location, gguf = _hub_file(spec.source, opts.get("gguf_file") or (spec.files[0] if spec.files else None)), True
    if gguf and backend == "transformers":
        from t2i.llm.transformers_llm import TransformersLLM

        return TransformersLLM.load_gguf(location, name=spec.name)
    if gguf or backend == "llama.cpp":
        if not gguf:
            raise LLMError(f"{name!r} is not a GGUF file; the llama.cpp backend takes .gguf files")
        from t2i.llm.llamacpp_llm import LlamaCppLLM

        return LlamaCppLLM.load(location, n_ctx=ints.get("n_ctx", 2048), n_threads=ints.get("n_threads"),
                                n_gpu_layers=ints.get("n_gpu_layers", 0), name=spec.name)
    from t2i.llm.transformers_llm import TransformersLLM

    return TransformersLLM.load(location if location is not None else spec.source, device=opts.get("device", "auto"),
                                dtype=opts.get("dtype"), name=spec.name)


def _hub_file(repo_id: str, filename: str | None) -> Path:
    if not filename:
        raise LLMError(f"{repo_id} has no known GGUF file; pass --llm-option gguf_file=NAME")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise LLMError("downloading a GGUF file needs huggingface_hub: pip install 't2i[diffusers]'") from e
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
    except Exception as e:  # huggingface_hub raises several unrelated types here
        raise LLMError(f"{repo_id}/{filename} is not in the local Hugging Face cache"
                       f"{' and HF_HUB_OFFLINE is set' if offline else ''}: `huggingface-cli download {repo_id} "
                       f"{filename}`, or pass the .gguf file's path ({type(e).__name__})") from e
