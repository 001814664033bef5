"""Tests for t2i.registry (names, hub ids, local paths, loaders) and t2i.licences."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from t2i.licences import licence_notice_once, state_dir
from t2i.registry import (
    BUILTIN_MODELS,
    KOALA,
    Licence,
    ModelError,
    ModelRegistry,
    ModelSpec,
    ResolvedModel,
    package_weights,
)

KOALA_NEGATIVE = "worst quality, low quality, illustration, low resolution"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the network, whatever a test resolves."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry()


def model_folder(path: Path, index: Any = None, *, raw: str | None = None) -> Path:
    """A folder with a model_index.json holding `index` as JSON (or `raw` text)."""
    path.mkdir(parents=True, exist_ok=True)
    text = raw if raw is not None else json.dumps(index)
    (path / "model_index.json").write_text(text, encoding="utf-8")
    return path


class FakeBackend:
    def __init__(self, resolved: ResolvedModel, options: Mapping[str, Any]) -> None:
        self.resolved = resolved
        self.options = dict(options)

    def generate(self, request, callback=None):  # pragma: no cover - never called here
        raise NotImplementedError


# --------------------------------------------------------------------------- registered names


def test_koala_700m_resolves_with_card_defaults(registry: ModelRegistry) -> None:
    resolved = registry.resolve("koala-700m")
    assert resolved.origin == "registered"
    assert resolved.location is None  # a hub model: the backend's library fetches it
    spec = resolved.spec
    assert spec.name == "koala-700m"
    assert spec.kind == "sdxl"
    assert spec.role == "image"
    assert spec.source == "etri-vilab/koala-700m"
    assert spec.licence == KOALA
    assert spec.defaults["steps"] == 25
    assert spec.defaults["guidance"] == 7.5
    assert spec.defaults["negative_prompt"] == KOALA_NEGATIVE
    assert not spec.embedded


def test_koala_lightning_defaults(registry: ModelRegistry) -> None:
    spec = registry.resolve("koala-lightning-700m").spec
    assert spec.kind == "sdxl"
    assert spec.source == "etri-vilab/koala-lightning-700m"
    assert spec.defaults["steps"] == 10
    assert spec.defaults["guidance"] == 3.5
    assert spec.defaults["negative_prompt"] == KOALA_NEGATIVE


def test_builtin_names_are_unique_and_valid() -> None:
    names = [s.name for s in BUILTIN_MODELS]
    assert len(names) == len(set(names))
    assert {"shapes-xl", "koala-700m", "koala-lightning-700m", "sdxl-base"} <= set(names)
    assert ModelRegistry().specs() == list(BUILTIN_MODELS)


def test_get_returns_registered_spec(registry: ModelRegistry) -> None:
    assert registry.get("koala-1b").source == "etri-vilab/koala-1b"


def test_hub_id_of_registered_source_resolves_to_that_spec(registry: ModelRegistry) -> None:
    resolved = registry.resolve("etri-vilab/koala-700m")
    assert resolved.spec is registry.get("koala-700m")
    assert resolved.origin == "registered"
    assert resolved.location is None


# --------------------------------------------------------------------------- unknown names


def test_unknown_name_lists_registered_names_and_suggests_close_one(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError) as info:
        registry.resolve("koala-700")
    message = str(info.value)
    assert "'koala-700'" in message
    assert "Did you mean" in message
    suggestion = message.split("Did you mean", 1)[1].split("?", 1)[0]
    assert "koala-700m" in suggestion
    for name in ("shapes-xl", "koala-700m", "sdxl-base", "karlo-v1-alpha"):
        assert name in message.split("Registered models:", 1)[1]


def test_unknown_name_without_close_match_has_no_suggestion(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match="Registered models: shapes-xl") as info:
        registry.get("zzzzzzzzzzzzzzzz")
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_empty_or_non_string_name_is_refused(registry: ModelRegistry, name: Any) -> None:
    with pytest.raises(ModelError, match="non-empty string"):
        registry.resolve(name)


@pytest.mark.parametrize("hub", ["missing", "installed"])
def test_unregistered_hub_id_offline_says_how_to_get_it(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    if hub == "missing":
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    else:
        fake = types.ModuleType("huggingface_hub")
        fake.try_to_load_from_cache = lambda repo_id, filename, **kw: None  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    repo = "nobody-at-all/no-such-model-t2i-test"
    with pytest.raises(ModelError) as info:
        registry.resolve(repo)
    message = str(info.value)
    assert repo in message
    assert "not a registered model" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "not in the local" in message and "cache" in message
    assert f"huggingface-cli download {repo}" in message
    assert "local folder" in message


def test_unregistered_hub_id_found_in_cache_takes_kind_from_model_index(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    snapshot = model_folder(tmp_path / "snap", {"_class_name": "UnCLIPPipeline"})

    def cached(repo_id: str, filename: str) -> Path | None:
        assert repo_id == "someone/some-unclip"
        return snapshot / filename

    monkeypatch.setattr("t2i.registry._hub_cache_path", cached)
    resolved = registry.resolve("someone/some-unclip")
    assert resolved.origin == "hub"
    assert resolved.location is None
    assert resolved.spec.kind == "unclip"
    assert resolved.spec.name == resolved.spec.source == "someone/some-unclip"


# --------------------------------------------------------------------------- local folders and files


@pytest.mark.parametrize(
    ("class_name", "kind"),
    [("StableDiffusionXLPipeline", "sdxl"), ("UnCLIPPipeline", "unclip"), ("PaellaPipeline", "paella")],
)
def test_local_folder_resolves_by_pipeline_class(
    registry: ModelRegistry, tmp_path: Path, class_name: str, kind: str
) -> None:
    folder = model_folder(tmp_path / "model", {"_class_name": class_name, "unet": ["diffusers", "UNet"]})
    resolved = registry.resolve(str(folder))
    assert resolved.origin == "local"
    assert resolved.location == folder
    assert resolved.spec.kind == kind
    assert resolved.spec.role == "image"
    assert resolved.spec.source == str(folder)


def test_local_folder_with_unsupported_class(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model", {"_class_name": "StableDiffusionPipeline"})
    with pytest.raises(ModelError, match="'StableDiffusionPipeline' is not supported.*StableDiffusionXLPipeline"):
        registry.resolve(str(folder))


def test_local_folder_without_class_name(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model", {"unet": []})
    with pytest.raises(ModelError, match="None is not supported"):
        registry.resolve(str(folder))


def test_local_folder_without_model_index(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ModelError, match="not a model folder.*no model_index.json"):
        registry.resolve(str(folder))


@pytest.mark.parametrize("raw", ["{not json", "[1, 2, 3]", '"a string"', "\udcff"])
def test_local_folder_with_corrupt_model_index(registry: ModelRegistry, tmp_path: Path, raw: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_bytes(raw.encode("utf-8", "surrogateescape"))
    with pytest.raises(ModelError, match="unreadable model_index.json"):
        registry.resolve(str(folder))


@pytest.mark.parametrize("class_name", [["StableDiffusionXLPipeline"], {"a": 1}, 3])
def test_local_folder_with_non_string_class_name(registry: ModelRegistry, tmp_path: Path, class_name: Any) -> None:
    folder = model_folder(tmp_path / "model", {"_class_name": class_name})
    with pytest.raises(ModelError, match="is not supported"):
        registry.resolve(str(folder))


@pytest.mark.parametrize(
    ("filename", "kind", "role"),
    [("model.gguf", "llm", "presample"), ("model.safetensors", "sdxl", "image"),
     ("MODEL.SAFETENSORS", "sdxl", "image")],
)
def test_local_files_resolve_by_suffix(
    registry: ModelRegistry, tmp_path: Path, filename: str, kind: str, role: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(b"\0" * 16)
    resolved = registry.resolve(str(path))
    assert resolved.origin == "local"
    assert resolved.location == path
    assert resolved.spec.kind == kind
    assert resolved.spec.role == role


@pytest.mark.parametrize("filename", ["notes.txt", "model"])
def test_local_file_of_unsupported_type(registry: ModelRegistry, tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ModelError, match="unsupported model file type.*safetensors.*gguf"):
        registry.resolve(str(path))


def test_relative_local_path_resolves(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_folder(tmp_path / "org" / "model", {"_class_name": "StableDiffusionXLPipeline"})
    monkeypatch.chdir(tmp_path)
    resolved = registry.resolve("org/model")  # looks like a hub id, but the folder exists
    assert resolved.origin == "local"
    assert resolved.spec.kind == "sdxl"


# --------------------------------------------------------------------------- embedded models


def _ghost_registry() -> ModelRegistry:
    """A registry with an embedded model whose weights are not in the package (paella-tiny's may ship later)."""
    ghost = ModelSpec("ghost-tiny", "sdxl", "image", "package:ghost-tiny", Licence("MIT", "", ""), "not shipped")
    return ModelRegistry([ghost])


def test_embedded_model_without_weights_is_a_clear_error() -> None:
    registry = _ghost_registry()
    spec = registry.get("ghost-tiny")
    assert spec.embedded
    assert not registry.is_available(spec)
    with pytest.raises(ModelError, match="'ghost-tiny' has no weights in this installation") as info:
        registry.resolve("ghost-tiny")
    assert str(package_weights("ghost-tiny")) in str(info.value)
    with pytest.raises(ModelError, match="no weights"):
        registry.load("ghost-tiny")


def test_embedded_model_by_source_checks_weights_too() -> None:
    with pytest.raises(ModelError, match="no weights"):
        _ghost_registry().resolve("package:ghost-tiny")


def test_shipped_default_model_resolves_to_the_package(registry: ModelRegistry) -> None:
    resolved = registry.resolve("shapes-xl")
    assert resolved.location == package_weights("shapes-xl")
    assert (resolved.location / "model_index.json").exists() and registry.is_available(resolved.spec)


def test_shipped_weights_carry_their_own_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a shipped model's defaults belong to its folder alone (t2i_defaults.json, else model_index.json's
    # "defaults"); its registry entry carries none; unknown keys are dropped
    spec = ModelSpec("ghost-tiny", "sdxl", "image", "package:ghost-tiny", Licence("MIT", "", ""), "shipped")
    monkeypatch.setattr("t2i.registry.package_weights", lambda name: tmp_path / name)
    folder = model_folder(tmp_path / "ghost-tiny", {"_class_name": "StableDiffusionXLPipeline",
                                                    "defaults": {"steps": 12}})
    registry = ModelRegistry([spec])
    assert registry.resolve("ghost-tiny").spec.defaults == {"steps": 12}
    (folder / "t2i_defaults.json").write_text(json.dumps({"guidance": 2.0, "colour": "red"}), encoding="utf-8")
    assert registry.resolve("ghost-tiny").spec.defaults == {"guidance": 2.0}
    assert registry.get("ghost-tiny").defaults == {}  # the registered spec itself is unchanged
    (folder / "t2i_defaults.json").write_text("{guidance: 2", encoding="utf-8")
    with pytest.raises(ModelError, match="t2i_defaults.json: unreadable"):
        registry.resolve("ghost-tiny")
    # default backend options: filled in beneath the request's own, key by key
    from t2i.generate import resolve_request
    from t2i.types import GenerationRequest

    (folder / "t2i_defaults.json").write_text(json.dumps({"options": {"empty_negative": 0.24, "batch_size": 2}}),
                                              encoding="utf-8")
    resolved = registry.resolve("ghost-tiny").spec
    request = resolve_request(GenerationRequest("a cat", model="ghost-tiny", model_options={"batch_size": 4}),
                              resolved, seed=1)
    assert dict(request.model_options) == {"empty_negative": 0.24, "batch_size": 4}
    (folder / "t2i_defaults.json").write_text(json.dumps({"options": {"x": [1, 2]}}), encoding="utf-8")
    with pytest.raises(ModelError, match="default options must map names to plain values"):
        registry.resolve("ghost-tiny")


def test_hub_models_are_not_available_offline_without_cache(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("t2i.registry._hub_cache_path", lambda repo_id, filename: None)
    assert not registry.is_available(registry.get("koala-700m"))


# --------------------------------------------------------------------------- loaders


def test_load_without_loader_for_kind(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match="no backend for 'sdxl' models is installed.*koala-700m"):
        registry.load("koala-700m")


def test_register_loader_makes_load_return_its_backend(registry: ModelRegistry) -> None:
    calls: list[tuple[ResolvedModel, dict]] = []

    def loader(resolved: ResolvedModel, options: Mapping[str, Any]) -> FakeBackend:
        calls.append((resolved, dict(options)))
        return FakeBackend(resolved, options)

    registry.register_loader("sdxl", loader)
    resolved, backend = registry.load("koala-700m", {"dtype": "float16"})
    assert isinstance(backend, FakeBackend)
    assert resolved.spec.name == "koala-700m"
    assert backend.resolved is resolved
    assert backend.options == {"dtype": "float16"}
    assert calls == [(resolved, {"dtype": "float16"})]
    # no options -> an empty mapping, not None
    _, backend2 = registry.load("koala-lightning-700m")
    assert backend2.options == {}
    # other kinds still have no loader
    with pytest.raises(ModelError, match="no backend for 'unclip'"):
        registry.load("karlo-v1-alpha")


def test_loaders_given_to_constructor(tmp_path: Path) -> None:
    reg = ModelRegistry(loaders={"llm": FakeBackend})
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    resolved, backend = reg.load(str(path))
    assert isinstance(backend, FakeBackend)
    assert resolved.spec.kind == "llm"


def test_register_loader_for_unknown_kind(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match="unknown kind 'video'"):
        registry.register_loader("video", FakeBackend)


def test_registering_the_same_name_twice_raises(registry: ModelRegistry) -> None:
    spec = ModelSpec("mine", "sdxl", "image", "me/mine", Licence("MIT", "", "ok"), "my model")
    registry.register(spec)
    assert registry.get("mine") is spec
    with pytest.raises(ModelError, match="'mine' is already registered"):
        registry.register(spec)
    with pytest.raises(ModelError, match="'koala-700m' is already registered"):
        registry.register(ModelSpec("koala-700m", "sdxl", "image", "x/y", KOALA, "dup"))
    with pytest.raises(ModelError, match="already registered"):
        ModelRegistry([spec, spec])


def test_spec_validates_kind_and_role() -> None:
    lic = Licence("MIT", "", "ok")
    with pytest.raises(ValueError, match="unknown kind"):
        ModelSpec("x", "video", "image", "a/b", lic, "")
    with pytest.raises(ValueError, match="unknown role"):
        ModelSpec("x", "sdxl", "upscale", "a/b", lic, "")


def test_registries_do_not_share_state() -> None:
    a, b = ModelRegistry(), ModelRegistry()
    a.register(ModelSpec("only-in-a", "sdxl", "image", "me/a", Licence("MIT", "", "ok"), ""))
    a.register_loader("sdxl", FakeBackend)
    with pytest.raises(ModelError):
        b.get("only-in-a")
    with pytest.raises(ModelError, match="no backend"):
        b.load("koala-700m")


# --------------------------------------------------------------------------- licences


def test_licence_notice_once(registry: ModelRegistry, tmp_path: Path) -> None:
    spec = registry.get("koala-700m")
    state = tmp_path / "state"
    first = licence_notice_once(spec, state)
    assert first is not None
    assert "koala-700m" in first
    assert KOALA.name in first
    assert KOALA.url in first
    assert KOALA.summary in first
    assert licence_notice_once(spec, state) is None
    # another model still gets its own notice
    assert licence_notice_once(registry.get("sdxl-base"), state) is not None
    assert licence_notice_once(registry.get("sdxl-base"), state) is None


def test_licence_notice_without_url(tmp_path: Path) -> None:
    spec = ModelSpec("mine", "sdxl", "image", "me/mine", Licence("MIT", "", "Permissive."), "")
    notice = licence_notice_once(spec, tmp_path)
    assert notice == "mine is licensed under MIT. Permissive."


@pytest.mark.parametrize("corrupt", [b"{not json", b'{"a": 1}', b"42", b"\xff\xfe", b""])
def test_licence_notice_survives_corrupt_state(registry: ModelRegistry, tmp_path: Path, corrupt: bytes) -> None:
    (tmp_path / "licences-seen.json").write_bytes(corrupt)
    spec = registry.get("koala-700m")
    assert licence_notice_once(spec, tmp_path) is not None
    assert licence_notice_once(spec, tmp_path) is None  # the state file was rewritten


def test_licence_state_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: ModelRegistry) -> None:
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home"
    spec = registry.get("koala-1b")
    assert licence_notice_once(spec) is not None
    assert (tmp_path / "home" / "licences-seen.json").is_file()
    assert licence_notice_once(spec) is None
    monkeypatch.delenv("T2I_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "t2i"


def test_licence_notice_with_unwritable_state_is_shown_again(registry: ModelRegistry, tmp_path: Path) -> None:
    state = tmp_path / "a-file"
    state.write_text("not a folder", encoding="utf-8")
    spec = registry.get("koala-700m")
    assert licence_notice_once(spec, state) is not None
    assert licence_notice_once(spec, state) is not None


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickled_checkpoints_are_refused(tmp_path, registry: ModelRegistry, suffix: str) -> None:
    f = tmp_path / f"model{suffix}"
    f.write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickled checkpoints are not loaded"):
        registry.resolve(str(f))


def test_is_registered(registry: ModelRegistry) -> None:
    assert registry.is_registered("koala-700m") and registry.is_registered("etri-vilab/koala-700m")
    assert not registry.is_registered("package:shapes-xl") and not registry.is_registered("/tmp/x")


def test_tipo_entries_name_their_gguf_files_and_local_llm_folders_resolve(tmp_path):
    import json as _json

    from t2i.registry import ModelRegistry

    reg = ModelRegistry()
    spec = reg.get("tipo-500m-ft")
    assert spec.kind == "llm" and spec.role == "presample" and spec.source == "KBlueLeaf/TIPO-500M-ft"
    assert spec.files == ("TIPO-500M-ft-F16.gguf",)
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "config.json").write_text(_json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert reg.resolve(str(folder)).spec.kind == "llm"
    (folder / "config.json").write_text(_json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ModelError, match="ForCausalLM"):
        reg.resolve(str(folder))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert reg.resolve(str(gguf)).spec.kind == "llm"


def test_the_registry_sits_below_the_backends() -> None:
    """The backend contract lives in t2i.backends.base; the registry (which the backends import) imports no
    backend module, so there is no import cycle."""
    import subprocess

    import t2i.registry as registry_module

    assert not hasattr(registry_module, "Backend") and not hasattr(registry_module, "Cancelled")
    code = ("import sys, t2i.registry; "
            "print(sorted(m for m in sys.modules if m.startswith(('t2i.backends', 't2i.generate'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
