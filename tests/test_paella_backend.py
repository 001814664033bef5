"""The Paella backend through the registry, the API and the CLI, on a tiny saved pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2i.backends import default_registry
from t2i.cancel import Cancelled, CancelToken
from t2i.cli import main
from t2i.generate import generate
from t2i.metadata import read_image_metadata
from t2i.paella import Paella, VQModel
from t2i.paella.pipeline import PaellaPipeline
from t2i.paella.text import tiny_byt5_encoder
from t2i.registry import ModelError
from t2i.types import GenerationRequest, RequestError

from .test_paella import TINY, TINY_VQ, save_tiny_variation_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    pipe = PaellaPipeline(Paella(TINY), VQModel(TINY_VQ), tiny_byt5_encoder(16, 1, 2, 32), max_length=16)
    return pipe.save_pretrained(tmp_path_factory.mktemp("paella") / "tiny",
                                {"steps": 3, "guidance": 2.0, "width": 32, "height": 32})


def test_a_saved_pipeline_is_a_paella_model_with_its_defaults(folder):
    registry = default_registry()
    resolved = registry.resolve(str(folder))
    assert resolved.spec.kind == "paella" and resolved.spec.defaults["steps"] == 3
    result = generate(GenerationRequest("a red circle", model=str(folder), seed=4, n_images=3), registry)
    assert [im.size for im in result.images] == [(32, 32)] * 3 and result.seeds == [4, 5, 6]
    assert result.request.steps == 3 and result.request.sampler == "paella"
    alone = generate(GenerationRequest("a red circle", model=str(folder), seed=5), registry)
    assert np.array_equal(np.asarray(alone.images[0]), np.asarray(result.images[1]))


def test_options_errors_and_cancel(folder):
    registry = default_registry()
    _, backend = registry.load(str(folder))
    req = GenerationRequest("x", model=str(folder), seed=1, steps=3, guidance=2.0, width=32, height=32)
    for opts, match in (({"temperature": "1"}, "two numbers"), ({"renoise_steps": 5}, "renoise_steps"),
                        ({"what": 1}, "unknown Paella options")):
        with pytest.raises(RequestError, match=match):
            backend.generate(req.with_(model_options=opts))
    with pytest.raises(RequestError, match="multiple of 16"):
        backend.generate(req.with_(width=40))
    with pytest.raises(RequestError, match="own sampler"):
        backend.generate(req.with_(sampler="euler"))
    with pytest.raises(Cancelled):
        backend.generate(req.with_(n_images=2), lambda done, total: done < 2)
    long = backend.generate(req.with_(prompt="a very long prompt that runs past sixteen bytes"))
    assert any("cut" in w for w in long.warnings)
    with pytest.raises(ModelError, match="unknown Paella options"):
        registry.load(str(folder), {"nope": 1})


def test_an_and_prompt_is_composable_diffusion_with_batch_progress(folder):
    registry = default_registry()
    _, backend = registry.load(str(folder))
    req = GenerationRequest("a red circle AND a blue square :0.5", model=str(folder), seed=1, steps=3, guidance=2.0,
                            width=32, height=32, n_images=3, model_options={"batch_size": 2})
    seen = []
    result = backend.generate(req, lambda done, total: seen.append((done, total)))
    assert seen == [(2, 9), (4, 9), (6, 9), (7, 9), (8, 9), (9, 9)]  # two images per step in the first batch
    again = backend.generate(req)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(result.images, again.images, strict=True))
    with pytest.raises(RequestError, match="empty"):
        backend.generate(req.with_(prompt="a red circle AND"))


def test_the_token_stops_between_batches_and_inside_one(folder):
    registry = default_registry()
    _, backend = registry.load(str(folder))
    req = GenerationRequest("a red circle", model=str(folder), seed=1, steps=3, guidance=2.0, width=32, height=32,
                            n_images=3, model_options={"batch_size": 2})
    for at in (6, 4):  # the end of the first batch (two images, three steps), and inside it
        token, seen = CancelToken(), []

        def callback(done, total, at=at, token=token, seen=seen):
            seen.append(done)
            if done == at:
                token.cancel("test")

        with pytest.raises(Cancelled, match=f"step {at} of 9: test"):
            backend.generate(req, callback, token)
        assert seen[-1] == at


def test_cli_generates_with_a_paella_folder(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    out = tmp_path / "a.png"
    assert main(["generate", "a blue star", "--model", str(folder), "--seed", "3", "--option", "renoise_steps=1",
                 "--out", str(out)]) == 0
    meta = read_image_metadata(out)
    assert meta.request.model == str(folder) and meta.request.model_options == {"renoise_steps": 1}


def test_released_weights_offline_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="huggingface-cli download dome272/Paella"):
        default_registry().load("paella-v3")


def test_cli_convert_writes_safetensors_and_refuses_to_overwrite(tmp_path, capsys):
    from t2i.paella.checkpoints import read_state_dict

    src = tmp_path / "w.pt"
    torch.save({"a": torch.ones(2), "b": torch.zeros(3)}, src)
    dst = tmp_path / "w.safetensors"
    assert main(["convert", str(src), str(dst)]) == 0
    assert torch.equal(read_state_dict(dst)["a"], torch.ones(2)) and "2 tensors" in capsys.readouterr().out
    assert main(["convert", str(src), str(dst)]) == 2 and "not overwriting" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "x.bin")]) == 2


def test_image_variations_through_the_backend(tmp_path):
    from PIL import Image
    folder = save_tiny_variation_pipeline(tmp_path / "v", steps=2)
    Image.new("RGB", (40, 40), (250, 10, 10)).save(tmp_path / "red.png")
    registry = default_registry()
    base = GenerationRequest("a circle", model=str(folder), seed=2)
    plain = generate(base, registry).images[0]
    varied = generate(base.with_(model_options={"variation_image": str(tmp_path / "red.png"),
                                                "variation_weight": 2.0}), registry)
    assert not np.array_equal(np.asarray(plain), np.asarray(varied.images[0]))
    assert varied.request.model_options["variation_image"].endswith("red.png")  # kept for the metadata
    for opts, match in (({"variation_image": str(tmp_path / "missing.png")}, "cannot read"),
                        ({"variation_weight": 2.0}, "needs variation_image")):
        with pytest.raises(RequestError, match=match):
            generate(base.with_(model_options=opts), registry)


def test_variations_need_a_clip_image_encoder(folder, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    req = GenerationRequest("x", model=str(folder), seed=1, model_options={"variation_image": str(tmp_path / "x.png")})
    with pytest.raises(RequestError, match="no CLIP image encoder"):
        generate(req, default_registry())
