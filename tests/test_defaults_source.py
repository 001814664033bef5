"""Defaults have one source: a shipped model's folder, a hub model's registry entry."""

from __future__ import annotations

import json

import pytest

from t2i.registry import BUILTIN_MODELS, DEFAULTS_FILE, ModelError, ModelRegistry, ModelSpec, package_weights


@pytest.mark.parametrize("spec", [s for s in BUILTIN_MODELS if s.embedded], ids=lambda s: s.name)
def test_a_shipped_models_defaults_come_from_its_folder_alone(spec):
    assert spec.defaults == {}, "a shipped model's registry entry carries no defaults: its folder does"
    folder = package_weights(spec.source.removeprefix("package:"))
    sources = {}
    if (folder / DEFAULTS_FILE).is_file():
        sources[DEFAULTS_FILE] = json.loads((folder / DEFAULTS_FILE).read_text(encoding="utf-8"))
    index = folder / "model_index.json"
    if index.is_file() and "defaults" in json.loads(index.read_text(encoding="utf-8")):
        sources["model_index.json"] = json.loads(index.read_text(encoding="utf-8"))["defaults"]
    if spec.kind == "llm":  # a language model's settings are its presample.json / compose.json
        assert sources == {} and ((folder / "presample.json").is_file() or (folder / "compose.json").is_file())
        return
    assert sources, f"{spec.name}: no defaults in its folder"
    # where a folder has both, no key may differ
    if len(sources) == 2:
        a, b = sources.values()
        assert {k: a[k] for k in a if k in b} == {k: b[k] for k in a if k in b}
    resolved = ModelRegistry().resolve(spec.name).spec.defaults
    first = next(iter(sources.values()))
    assert {k: resolved[k] for k in first if k in resolved} == {k: v for k, v in first.items() if k in resolved}


def test_shapes_xl_guidance_is_its_folders():
    assert ModelRegistry().resolve("shapes-xl").spec.defaults["guidance"] == 2.0


def test_a_shipped_model_registered_with_defaults_of_its_own_is_refused():
    base = next(s for s in BUILTIN_MODELS if s.name == "shapes-xl")
    registry = ModelRegistry(specs=())
    registry.register(ModelSpec("shapes-xl", "sdxl", "image", base.source, base.licence, "x", {"guidance": 1.0}))
    with pytest.raises(ModelError, match="its defaults belong in its folder"):
        registry.resolve("shapes-xl")


@pytest.mark.parametrize("spec", [s for s in BUILTIN_MODELS if not s.embedded and s.kind != "llm"],
                         ids=lambda s: s.name)
def test_a_hub_model_has_its_defaults_in_its_registry_entry(spec):
    assert {"steps", "guidance", "width", "height"} <= set(spec.defaults)
