"""One model registry: names -> kind, default settings, where the weights live, licence.

A model is named by a registered name (`shapes-xl`, `koala-700m`, ...), a hub id, or a local
folder/file.  The kind (`sdxl`, `unclip`, `paella`, `llm`) follows from the model; there is no
separate backend flag.  Loaders for each kind are registered on a `ModelRegistry` instance, which the
caller owns (no module-global state); `t2i.backends.default_registry()` builds one with the built-in
entries and loaders.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from t2i.limits import DEFAULT_MAX_PIXELS

KINDS = ("sdxl", "unclip", "paella", "llm")
ROLES = ("image", "presample", "compose")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(ValueError):
    """A model that cannot be found, resolved or loaded; the message says what to do."""


@dataclass(frozen=True)
class Licence:
    name: str
    url: str
    summary: str


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.  `source` is a hub id, or `package:NAME` for weights shipped in t2i."""

    name: str
    kind: str
    role: str
    source: str
    licence: Licence
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)  # steps, guidance, width, height, sampler, negative
    files: tuple[str, ...] = ()  # specific files in the source (e.g. a GGUF file name)
    # pixels one call may draw, n included (t2i.limits); a caller raises it, never a request
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: unknown role {self.role!r}")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"{self.name}: max_pixels must be a positive integer, got {self.max_pixels!r}")

    @property
    def embedded(self) -> bool:
        return self.source.startswith("package:")


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: its spec and, when known, its local location."""

    spec: ModelSpec
    location: Path | None  # local folder/file; None = a hub id to be fetched by the backend's library
    origin: str  # "registered", "local" or "hub"


# A loader builds the backend of a resolved model from its options.  What it returns is a
# `t2i.backends.base.Backend` (that module writes the contract down); it is typed loosely here because the
# registry sits below the backends, which import it.
Loader = Callable[[ResolvedModel, Mapping[str, Any]], Any]


# ---------------------------------------------------------------------------- built-in entries

OURS = Licence("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0",
               "Trained by t2i on the procedural shapes world; same licence as t2i.")
KOALA = Licence("KOALA model licence (see the model card)", "https://huggingface.co/etri-vilab",
                "Read the KOALA model card's terms before use; the weights are ETRI's.")
SDXL = Licence("CreativeML Open RAIL++-M", "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0",
               "Use-based restrictions apply (Attachment A of the licence).")
KARLO = Licence("CreativeML Open RAIL-M", "https://huggingface.co/kakaobrain/karlo-v1-alpha",
                "Use-based restrictions apply (Attachment A of the licence).")
PAELLA = Licence("MIT", "https://huggingface.co/dome272/Paella", "Permissive.")
TIPO = Licence("Kohaku License 1.0", "https://huggingface.co/KBlueLeaf/TIPO-500M",
               "Read the licence file in the model repository before use.")
OMOST = Licence("Base-model licences (Llama 3 / Phi-3)", "https://huggingface.co/lllyasviel",
                "Omost LLMs inherit the licences of Llama 3 and Phi-3; follow them.")

# "options": backend options the model is sampled with by default (a request's own options win, key by key)
# "compose": when and how the model's prompts are composed (t2i.composition_plan)
DEFAULT_KEYS = ("steps", "guidance", "width", "height", "sampler", "negative_prompt", "options", "compose")
DEFAULTS_FILE = "t2i_defaults.json"  # a model folder's own sampling defaults (a subset of DEFAULT_KEYS)
_KOALA_DEFAULTS = {"steps": 25, "guidance": 7.5, "width": 1024, "height": 1024, "sampler": "euler",
                   "negative_prompt": "worst quality, low quality, illustration, low resolution"}
_LIGHTNING_DEFAULTS = {"steps": 10, "guidance": 3.5, "width": 1024, "height": 1024, "sampler": "euler-trailing",
                       "negative_prompt": "worst quality, low quality, illustration, low resolution"}


# The shipped tiny models: a megapixel per call (64 images at 128x128, or one 1024x1024), far past their use.
TINY_MAX_PIXELS = 1024 * 1024


def _koala(name: str, defaults: Mapping[str, Any], what: str) -> ModelSpec:
    return ModelSpec(name, "sdxl", "image", f"etri-vilab/{name}", KOALA, what, defaults)


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    # the shipped models' defaults are their folders' own (t2i_defaults.json, else model_index.json's
    # "defaults"): one source, read by `resolve`
    ModelSpec("shapes-xl", "sdxl", "image", "package:shapes-xl", OURS,
              "Tiny SDXL-architecture model trained on shapes world (offline default)", max_pixels=TINY_MAX_PIXELS),
    ModelSpec("shapes-koala", "sdxl", "image", "package:shapes-koala", OURS,
              "KOALA-700M-style student distilled from shapes-xl (the fast offline model)",
              max_pixels=TINY_MAX_PIXELS),
    ModelSpec("paella-tiny", "paella", "image", "package:paella-tiny", OURS,
              "Tiny Paella token model trained on shapes world (128x128: a 32x32 token grid)",
              max_pixels=TINY_MAX_PIXELS),
    _koala("koala-700m", _KOALA_DEFAULTS, "KOALA-700M: SDXL with a compressed U-Net"),
    _koala("koala-1b", _KOALA_DEFAULTS, "KOALA-1B: SDXL with a compressed U-Net"),
    _koala("koala-700m-llava-cap", _KOALA_DEFAULTS, "KOALA-700M trained on LLaVA captions"),
    _koala("koala-1b-llava-cap", _KOALA_DEFAULTS, "KOALA-1B trained on LLaVA captions"),
    _koala("koala-lightning-700m", _LIGHTNING_DEFAULTS, "KOALA-Lightning-700M (10 steps)"),
    _koala("koala-lightning-1b", _LIGHTNING_DEFAULTS, "KOALA-Lightning-1B (10 steps)"),
    ModelSpec("sdxl-base", "sdxl", "image", "stabilityai/stable-diffusion-xl-base-1.0", SDXL, "SDXL base 1.0",
              {"steps": 25, "guidance": 5.0, "width": 1024, "height": 1024, "sampler": "euler",
               "negative_prompt": ""}),
    ModelSpec("karlo-v1-alpha", "unclip", "image", "kakaobrain/karlo-v1-alpha", KARLO,
              "Karlo unCLIP: prior, decoder, super-resolution (256x256)",
              {"steps": 25, "guidance": 8.0, "width": 256, "height": 256}),
    ModelSpec("paella-v3", "paella", "image", "dome272/Paella", PAELLA, "Paella v3 token sampler over a VQGAN",
              {"steps": 12, "guidance": 8.0, "width": 256, "height": 256, "sampler": "paella",
               "negative_prompt": "low quality, low resolution, bad image, blurry, blur"},
              files=("paella_v3.pt", "vqgan_f4.pt", "prior_v1.pt")),
    ModelSpec("tipo-tiny", "llm", "presample", "package:tipo-tiny", OURS, "Tiny TIPO presampler (shapes world)"),
    *(ModelSpec(n.lower(), "llm", "presample", f"KBlueLeaf/{n}", TIPO, f"TIPO presampler {n}",
                files=(f"{n}-F16.gguf",))
      for n in ("TIPO-100M", "TIPO-200M", "TIPO-200M-ft", "TIPO-200M-ft2", "TIPO-500M", "TIPO-500M-ft")),
    ModelSpec("omost-tiny", "llm", "compose", "package:omost-tiny", OURS, "Tiny Omost composer (shapes world)"),
    *(ModelSpec(n, "llm", "compose", f"lllyasviel/{n}", OMOST, f"Omost composer {n}")
      for n in ("omost-llama-3-8b", "omost-llama-3-8b-4bits", "omost-dolphin-2.9-llama3-8b",
                "omost-dolphin-2.9-llama3-8b-4bits", "omost-phi-3-mini-128k", "omost-phi-3-mini-128k-8bits")),
)

# diffusers pipeline class -> our kind, for local folders and cached hub repos
_PIPELINE_KINDS = {
    "StableDiffusionXLPipeline": "sdxl",
    "UnCLIPPipeline": "unclip",
    "PaellaPipeline": "paella",
}


def package_weights(name: str) -> Path:
    """Folder of weights shipped inside t2i for embedded model `name` (may not exist yet)."""
    return Path(str(resources.files("t2i"))) / "weights" / name


# ---------------------------------------------------------------------------- the registry

class ModelRegistry:
    """Model specs by name plus one loader per kind; owned by the caller."""

    def __init__(self, specs: Iterable[ModelSpec] = BUILTIN_MODELS,
                 loaders: Mapping[str, Loader] | None = None) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self._loaders: dict[str, Loader] = dict(loaders or {})
        for s in specs:
            self.register(s)

    def register(self, spec: ModelSpec) -> None:
        """Add a model; a name may be registered once."""
        if spec.name in self._specs:
            raise ModelError(f"model {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def register_loader(self, kind: str, loader: Loader) -> None:
        """Set the loader used for models of `kind`."""
        if kind not in KINDS:
            raise ModelError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
        self._loaders[kind] = loader

    def is_registered(self, name: str) -> bool:
        """True for a registered name or the hub id of a registered model."""
        return name in self._specs or any(s.source == name and not s.embedded for s in self._specs.values())

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> ModelSpec:
        """The registered spec called `name`; raises ModelError listing the known names."""
        if name in self._specs:
            return self._specs[name]
        close = difflib.get_close_matches(name, list(self._specs), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} Registered models: {', '.join(self._specs)}; "
                         "a hub id (org/name) or a local folder/file also works.")

    def has_backend(self, kind: str) -> bool:
        """True when models of `kind` can be loaded: a loader is registered for it (language models are opened
        by `t2i.backends.llm`, not through a loader)."""
        return kind == "llm" or kind in self._loaders

    def is_available(self, spec: ModelSpec) -> bool:
        """True when the model's weights can be had without network (shipped or in a local folder)."""
        if spec.embedded:
            return package_weights(spec.source.removeprefix("package:")).exists()
        return _hub_cache_path(spec.source, "config.json" if spec.kind == "llm" else "model_index.json") is not None

    def resolve(self, name: str) -> ResolvedModel:
        """Turn a registered name, hub id or local path into a ResolvedModel (no weights are read)."""
        if not isinstance(name, str) or not name.strip():
            raise ModelError("a model name must be a non-empty string")
        if name in self._specs:
            spec = self._specs[name]
            if spec.embedded:
                folder = package_weights(spec.source.removeprefix("package:"))
                if not folder.exists():
                    raise ModelError(f"model {name!r} has no weights in this installation of t2i "
                                     f"(expected {folder}); it has not been trained and shipped yet")
                if spec.defaults:  # one source: a shipped model's defaults live in its folder
                    raise ModelError(f"model {name!r} is shipped, so its defaults belong in its folder, not in "
                                     "its registry entry")
                spec = replace(spec, defaults=folder_defaults(folder))
                limit = folder_max_pixels(folder)
                return ResolvedModel(replace(spec, max_pixels=limit) if limit else spec, folder, "registered")
            return ResolvedModel(spec, None, "registered")
        by_source = [s for s in self._specs.values() if s.source == name]
        if by_source:
            return self.resolve(by_source[0].name)
        path = Path(name).expanduser()
        if path.exists():
            return ResolvedModel(_local_spec(path), path, "local")
        if HUB_ID.match(name) and not name.startswith((".", "/", "~")):
            return _unregistered_hub(name)
        return ResolvedModel(self.get(name), None, "registered")  # raises with the list of names

    def load(self, name: str, options: Mapping[str, Any] | None = None) -> tuple[ResolvedModel, Any]:
        """Resolve `name` and build its backend (a `t2i.backends.base.Backend`) with the kind's loader."""
        resolved = self.resolve(name)
        loader = self._loaders.get(resolved.spec.kind)
        if loader is None:
            raise ModelError(f"no backend for {resolved.spec.kind!r} models is installed "
                             f"(needed by {resolved.spec.name!r})")
        return resolved, loader(resolved, dict(options or {}))


def _known_defaults(defaults: Any) -> dict[str, Any]:
    known = {k: v for k, v in defaults.items() if k in DEFAULT_KEYS} if isinstance(defaults, dict) else {}
    options = known.get("options", {})
    if not (isinstance(options, dict) and all(isinstance(k, str) and isinstance(v, str | int | float | bool)
                                              for k, v in options.items())):
        raise ModelError(f"default options must map names to plain values (text, numbers, true/false), got {options!r}")
    return known


def folder_defaults(folder: Path) -> dict[str, Any]:
    """A model folder's own sampling defaults: its DEFAULTS_FILE, else the "defaults" of its model_index.json
    (as a Paella folder keeps them); keys outside DEFAULT_KEYS dropped; {} if it has none."""
    for file, key in ((folder / DEFAULTS_FILE, None), (folder / "model_index.json", "defaults")):
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ModelError(f"{file}: unreadable ({e})") from e
        if key is None:
            return _known_defaults(data)
        if isinstance(data, dict) and data.get(key) is not None:
            return _known_defaults(data[key])
    return {}


def folder_max_pixels(folder: Path) -> int | None:
    """The `max_pixels` a model folder's DEFAULTS_FILE declares (None when it declares none)."""
    file = folder / DEFAULTS_FILE
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("max_pixels")
    except (ValueError, AttributeError) as e:
        raise ModelError(f"{file}: unreadable ({e})") from e
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ModelError(f"{file}: max_pixels must be a positive integer, got {value!r}")
    return value


def _local_spec(path: Path) -> ModelSpec:
    """Infer a spec for a local folder or file."""
    name = str(path)
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file() and (path / "config.json").is_file():
            return _local_llm_spec(path)
        if not index.is_file():
            raise ModelError(f"{path}: not a model folder (no model_index.json, no config.json)")
        try:
            index_data = json.loads(index.read_text(encoding="utf-8"))
            cls = index_data.get("_class_name")
        except (OSError, ValueError, AttributeError) as e:
            raise ModelError(f"{index}: unreadable model_index.json ({e})") from e
        # our own pipelines may carry their sampling defaults (a model's defaults belong to the model): in
        # model_index.json (our own pipeline classes) or beside it (diffusers' classes warn of unknown keys)
        defaults = folder_defaults(path)
        kind = _PIPELINE_KINDS.get(cls) if isinstance(cls, str) else None
        if kind is None:
            raise ModelError(f"{path}: pipeline class {cls!r} is not supported "
                             f"(supported: {', '.join(_PIPELINE_KINDS)})")
        return ModelSpec(name, kind, "image", name, _LOCAL, f"local {cls} folder", defaults,
                         max_pixels=folder_max_pixels(path) or DEFAULT_MAX_PIXELS)
    suffix = path.suffix.lower()
    if suffix in (".ckpt", ".pt", ".pth", ".bin"):
        raise ModelError(f"{path}: pickled checkpoints are not loaded (they can run code); convert it to "
                         ".safetensors first")
    if suffix == ".safetensors":
        return ModelSpec(name, "sdxl", "image", name, _LOCAL, "local single-file SDXL checkpoint")
    if suffix == ".gguf":
        return ModelSpec(name, "llm", "presample", name, _LOCAL, "local GGUF language model")
    raise ModelError(f"{path}: unsupported model file type {suffix or '(none)'!r} "
                     "(use a diffusers folder, a .safetensors checkpoint or a .gguf file)")


def _local_llm_spec(path: Path) -> ModelSpec:
    """A transformers folder (config.json) of a causal language model."""
    try:
        arch = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"{path / 'config.json'}: unreadable ({e})") from e
    if not any(isinstance(a, str) and a.endswith("ForCausalLM") for a in arch):
        raise ModelError(f"{path}: config.json names {arch or 'no architecture'}; a language model folder needs "
                         "a *ForCausalLM architecture, an image model folder a model_index.json")
    return ModelSpec(str(path), "llm", "presample", str(path), _LOCAL, f"local {arch[0]} folder")


_LOCAL = Licence("as distributed", "", "A local model: its own licence applies.")


def _hub_cache_path(repo_id: str, filename: str) -> Path | None:
    """The cached file of a hub repo, or None (also when huggingface_hub is not installed)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None


def _unregistered_hub(repo_id: str) -> ResolvedModel:
    """An unregistered hub id: its kind comes from the cached model_index.json."""
    index = _hub_cache_path(repo_id, "model_index.json")
    config = _hub_cache_path(repo_id, "config.json") if index is None else None
    if config is not None:  # a cached language model
        spec = _local_llm_spec(config.parent)
        return ResolvedModel(ModelSpec(repo_id, "llm", spec.role, repo_id, _LOCAL, spec.description), None, "hub")
    if index is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE is set and " if offline else ""
        raise ModelError(f"{repo_id!r} is not a registered model and {why}its weights are not in the local "
                         f"Hugging Face cache. With network: `huggingface-cli download {repo_id}`; or pass "
                         "a local folder.")
    spec = _local_spec(index.parent)
    return ResolvedModel(ModelSpec(repo_id, spec.kind, spec.role, repo_id, _LOCAL, spec.description),
                         None, "hub")
