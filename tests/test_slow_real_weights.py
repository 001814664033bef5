"""Real hub weights end to end.  Marked `slow` (skipped by default: `pytest -m slow` runs them) and skipped
when the weights are not in the local hub cache: nothing here downloads (HF_HUB_OFFLINE=1).

Fill the cache first, with network, e.g.
    huggingface-cli download etri-vilab/koala-700m
    huggingface-cli download dome272/Paella paella_v3.pt vqgan_f4.pt
    huggingface-cli download KBlueLeaf/TIPO-200M-ft TIPO-200M-ft-F16.gguf
"""

from __future__ import annotations

import numpy as np
import pytest

from t2i.backends import default_registry
from t2i.generate import generate
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions

pytestmark = pytest.mark.slow


def _need(repo: str, filename: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo, filename), str):
        pytest.skip(f"{repo}/{filename} is not in the local hub cache")


def _need_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


def _visible(image) -> None:
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert np.isfinite(a).all()
    assert a.mean() > 5 and a.std() > 5, "a black or flat image"


@pytest.mark.parametrize("name", ["koala-700m", "koala-lightning-700m"])
def test_a_koala_model_draws_with_its_card_defaults(monkeypatch, name: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _need(f"etri-vilab/{name}", "model_index.json")
    result = generate(GenerationRequest("a red apple on a wooden table", model=name, seed=0, steps=4,
                                        width=512, height=512), default_registry())
    assert result.images[0].size == (512, 512)
    _visible(result.images[0])
    assert not [w for w in result.warnings if "black" in w or "NaN" in w]


def test_paella_v3_loads_strictly_and_samples(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for f in ("paella_v3.pt", "vqgan_f4.pt"):
        _need("dome272/Paella", f)
    result = generate(GenerationRequest("a photo of a cat", model="paella-v3", seed=0, steps=8, width=256,
                                        height=256), default_registry())
    assert result.images[0].size == (256, 256)
    _visible(result.images[0])


def test_a_released_tipo_model_expands_a_one_tag_prompt(monkeypatch) -> None:
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _need("KBlueLeaf/TIPO-200M-ft", "TIPO-200M-ft-F16.gguf")
    req = GenerationRequest("1girl", model="shapes-xl", seed=0, steps=2,
                            presample=PresampleOptions(enabled=True, model="tipo-200m-ft"))
    result = generate(req, default_registry())
    expanded = result.presampled_prompt or ""
    assert "1girl" in expanded and len(expanded.split(",")) >= 5, expanded


def test_a_released_omost_model_composes_a_canvas(monkeypatch) -> None:
    _need_cuda()
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _need("lllyasviel/omost-llama-3-8b-4bits", "config.json")
    req = GenerationRequest("a cat sitting on a red sofa", model="shapes-xl", seed=0, steps=2,
                            compose=ComposeOptions(enabled=True, model="omost-llama-3-8b-4bits"))
    result = generate(req, default_registry())
    assert result.canvas_program and "add_local_description" in result.canvas_program


def test_sdxl_base_distils_into_a_koala_700m_student_on_a_gpu(monkeypatch, tmp_path) -> None:
    """The recipe with a hub teacher, as users run it: two steps of KOALA-700M from SDXL-base at 1024 on
    four captioned images, bfloat16 teacher and gradient checkpointing, then the student draws."""
    import dataclasses

    from PIL import Image

    from t2i.distill.recipe import DistillConfig, train_distill

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _need_cuda()
    _need("stabilityai/stable-diffusion-xl-base-1.0", "model_index.json")
    data = tmp_path / "data"
    data.mkdir()
    for k, rgb in enumerate([(200, 40, 40), (40, 40, 200), (40, 160, 40), (220, 200, 40)]):
        Image.new("RGB", (1024, 1024), rgb).save(data / f"{k}.png")
        (data / f"{k}.txt").write_text("a flat colour field")
    cfg = dataclasses.replace(DistillConfig(), teacher="sdxl-base", student="koala-700m", data=str(data), steps=2,
                              batch=1, warmup=1, gradient_checkpointing=True, device="cuda")
    out = train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    result = generate(GenerationRequest("a red apple", model=str(out), seed=0, steps=4, width=512, height=512),
                      default_registry())
    assert result.images[0].size == (512, 512)
    assert np.isfinite(np.asarray(result.images[0], dtype=np.float32)).all()
