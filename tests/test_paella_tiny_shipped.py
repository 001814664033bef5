"""The shipped paella-tiny: where it lives, what it was trained as, that it loads in float32 and draws."""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors import safe_open

from t2i.backends import default_registry
from t2i.generate import generate
from t2i.registry import package_weights
from t2i.types import GenerationRequest
from t2i.world.detector import detect


def test_the_shipped_paella_tiny_is_a_float16_128_px_export_whose_defaults_the_registry_keeps() -> None:
    registry = default_registry()
    resolved = registry.resolve("paella-tiny")
    assert resolved.location == package_weights("paella-tiny") and registry.is_available(resolved.spec)
    index = json.loads((resolved.location / "model_index.json").read_text())
    assert resolved.spec.defaults == index["defaults"]  # the spec says what the export's own folder says
    recipe = json.loads((resolved.location / "RECIPE.json").read_text())
    assert recipe["model"] == "paella-tiny" and recipe["config"]["size"] == 128
    assert recipe["figures"]["stored_as"] == "float16"
    for path in resolved.location.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            floats = [f.get_tensor(k) for k in f.keys() if f.get_tensor(k).is_floating_point()]
            assert floats and all(t.dtype == torch.float16 for t in floats), path


def test_the_shipped_paella_tiny_draws_the_object_asked_for() -> None:
    # 128x128 images at the model's defaults; the detector finds the shape and colour the prompt names in at
    # least three of four seeds (a star: the shape the 64-px model could not draw)
    result = generate(GenerationRequest("a blue star", model="paella-tiny", seed=0, n_images=4), default_registry())
    assert [image.size for image in result.images] == [(128, 128)] * 4
    found = [{(d.shape, d.color) for d in detect(np.asarray(image))} for image in result.images]
    assert sum(("star", "blue") in f for f in found) >= 3, found
