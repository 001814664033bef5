import numpy as np
import pytest

pytest.importorskip("diffusers")

from t2i.backends import default_registry  # noqa: E402
from t2i.backends.sdxl import SAMPLERS, _check_image  # noqa: E402
from t2i.generate import generate  # noqa: E402
from t2i.registry import Cancelled, ModelError  # noqa: E402
from t2i.types import GenerationRequest, RequestError  # noqa: E402

from .tiny_sdxl import build_tiny_sdxl  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    registry = default_registry()
    resolved, backend = registry.load(str(path))
    assert resolved.spec.kind == "sdxl" and resolved.origin == "local"
    return registry, backend, str(path)


def _req(model, **kw):
    base = dict(prompt="a red circle", model=model, seed=5, steps=2, guidance=2.0, width=64, height=64)
    return GenerationRequest(**{**base, **kw})


def _arrays(result):
    return [np.asarray(im) for im in result.images]


def test_seeds_reproduce_exactly_and_image_k_replays(tiny):
    registry, backend, model = tiny
    a = generate(_req(model, n_images=2), registry, backend=backend)
    b = generate(_req(model, n_images=2), registry, backend=backend)
    assert a.seeds == [5, 6] and all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    assert not np.array_equal(*_arrays(a))
    one = generate(_req(model, seed=6), registry, backend=backend)
    assert np.array_equal(_arrays(one)[0], _arrays(a)[1])
    assert a.images[0].size == (64, 64) and a.timings["per_image"] > 0


def test_native_size_is_the_default(tiny):
    registry, backend, model = tiny
    result = generate(_req(model, width=None, height=None), registry, backend=backend)
    assert (result.request.width, result.request.height) == (64, 64)


def test_cancel(tiny):
    registry, backend, model = tiny
    seen = []

    def stop_at_two(step, total):
        seen.append((step, total))
        return step < 2

    with pytest.raises(Cancelled):
        generate(_req(model, steps=4), registry, backend=backend, callback=stop_at_two)
    assert seen[0] == (1, 4) and seen[-1][0] == 2


def test_progress_counts_every_image(tiny):
    registry, backend, model = tiny
    seen = []
    generate(_req(model, n_images=2), registry, backend=backend, callback=lambda s, t: seen.append((s, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_size_must_be_a_multiple(tiny):
    registry, backend, model = tiny
    with pytest.raises(RequestError, match="multiples of 16"):
        generate(_req(model, width=72), registry, backend=backend)


def test_long_prompt_is_reported(tiny):
    registry, backend, model = tiny
    result = generate(_req(model, prompt="red circle " * 60), registry, backend=backend)
    assert any("cut" in w for w in result.warnings)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_run(tiny, sampler):
    # the tiny model has shapes-xl's schedule: v-prediction at zero terminal SNR (sigma_max is huge there)
    registry, backend, model = tiny
    result = generate(_req(model, sampler=sampler), registry, backend=backend)
    assert len(result.images) == 1
    assert not [w for w in result.warnings if "NaN" in w]


def test_unknown_sampler_and_option(tiny):
    registry, backend, model = tiny
    with pytest.raises(RequestError, match="unknown sampler"):
        generate(_req(model, sampler="heun-magic"), registry, backend=backend)
    with pytest.raises(RequestError, match="unknown SDXL options"):
        generate(_req(model, model_options={"turbo": True}), registry, backend=backend)
    with pytest.raises(ModelError, match="unknown SDXL options"):
        registry.load(model, {"turbo": True})


def test_zero_pooled_option_runs(tiny):
    registry, backend, model = tiny
    result = generate(_req(model, model_options={"zero_pooled": True}), registry, backend=backend)
    assert len(result.images) == 1


def test_guidance_rescale_option_changes_the_guided_image(tiny):
    registry, backend, model = tiny
    plain = _arrays(generate(_req(model, guidance=5.0), registry, backend=backend))[0]
    rescaled = _arrays(generate(_req(model, guidance=5.0, model_options={"guidance_rescale": 0.7}),
                                registry, backend=backend))[0]
    assert not np.array_equal(plain, rescaled)


def test_nan_and_black_are_reported():
    assert "NaN" in _check_image(np.full((4, 4, 3), np.nan, np.float32), 1)[0]
    assert "black" in _check_image(np.zeros((4, 4, 3), np.float32), 2)[0]
    assert _check_image(np.full((4, 4, 3), 0.5, np.float32), 3) == []


def test_offline_hub_id_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        default_registry().load("koala-700m")


def test_single_file_needs_a_config_folder(tmp_path):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"{}")
    with pytest.raises(ModelError, match="--option config=FOLDER"):
        default_registry().load(str(ckpt))
    with pytest.raises(ModelError, match="not a local folder"):
        default_registry().load(str(ckpt), {"config": str(tmp_path / "nope")})


def test_float16_on_cpu_is_refused(tiny):
    registry, _, model = tiny
    with pytest.raises(ModelError, match="float16 on CPU"):
        registry.load(model, {"dtype": "float16", "device": "cpu"})


def test_cli_generate_then_from_reproduces_bit_for_bit(tiny, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from t2i.cli import main

    _, _, model = tiny
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "two yellow stars", "--model", model, "--seed", "11", "--n", "2", "--steps", "2",
                 "--out", "gen"]) == 0
    first, second = capsys.readouterr().out.split()
    assert main(["generate", "--from", second, "--model", model, "--out", "again.png"]) == 0
    assert np.array_equal(np.asarray(Image.open(second)), np.asarray(Image.open("again.png")))
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open("again.png")))
