import numpy as np
import pytest

pytest.importorskip("diffusers")

from t2i.backends import default_registry  # noqa: E402
from t2i.backends.sdxl import SAMPLERS, _check_image  # noqa: E402
from t2i.cancel import Cancelled, CancelToken  # noqa: E402
from t2i.generate import generate  # noqa: E402
from t2i.registry import ModelError  # noqa: E402
from t2i.types import ComposeOptions, GenerationRequest, RequestError  # noqa: E402

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


REMOVED = [({"zero_pooled": True}, "option zero_pooled was removed after t2i 0.1.0: drop it (it zeroed the pooled "
                                   "text embedding, a diagnostic; nothing replaces it)"),
           ({"region_text": "local-pooled"}, "region_text 'local-pooled' was removed after t2i 0.1.0: use 'local'"),
           ({"region_text": "local-outside"}, "region_text 'local-outside' was removed after t2i 0.1.0: use 'local'")]


@pytest.mark.parametrize(("options", "message"), REMOVED)
def test_a_removed_option_says_what_replaced_it(tiny, options, message):
    _, backend, model = tiny
    loads = []
    counting = default_registry()
    counting.register_loader("sdxl", lambda resolved, opts: loads.append(opts))
    for call in (lambda: generate(_req(model, model_options=options), counting),  # fails before loading anything
                 lambda: backend.generate(_req(model, model_options=options)),
                 lambda: default_registry().load(model, options)):
        with pytest.raises(RequestError) as info:
            call()
        assert str(info.value) == message
    assert loads == []


def _cancel_at(step):
    """A token, the steps the callback saw, and a callback that sets the token at `step` (done image-steps)."""
    token, seen = CancelToken(), []

    def callback(done, total):
        seen.append(done)
        if done == step:
            token.cancel("test")

    return token, seen, callback


@pytest.mark.parametrize(("prompt", "options", "canvas", "at", "total"), [
    pytest.param("a red circle", {"hires_scale": 1.5}, False, 5, 12, id="in-the-hires-pass"),  # 4 steps, then 2
    pytest.param("a red circle", {"init_strength": 0.5}, True, 1, 4, id="from-the-colour-image"),  # int(4 * 0.5)
    pytest.param("a red circle AND a blue square", {}, False, 6, 8, id="in-the-composable-loop"),
    pytest.param("a red circle", {"batch_size": 2}, False, 4, 8, id="in-a-batch"),  # a batch-step is 2 image-steps
    pytest.param("a red circle", {}, False, 4, 8, id="between-images"),  # the last step of image 0
])
def test_the_token_stops_every_stage_within_one_step(tiny, prompt, options, canvas, at, total):
    from .contract.suite import canvas_program

    _, backend, model = tiny
    compose = ComposeOptions(enabled=True, program=canvas_program()) if canvas else ComposeOptions()
    token, seen, callback = _cancel_at(at)
    with pytest.raises(Cancelled) as info:
        backend.generate(_req(model, prompt=prompt, steps=4, n_images=2, model_options=options, compose=compose),
                         callback, token)
    assert seen[-1] == at and str(info.value) == f"cancelled at step {at} of {total}: test"


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


# ---------------------------------------------------------------- AND prompts (composable diffusion)

@pytest.mark.parametrize("sampler, rescale", [("euler", 0.0), ("euler-a", 0.0), ("dpm++2m-karras", 0.7)])
def test_and_of_one_prompt_gives_the_pipelines_image(tiny, sampler, rescale):
    # the composable loop must be the pipeline's loop: u + g * (1 * (c - u) + 0 * (c - u)) is plain guidance
    registry, backend, model = tiny
    opts = {"guidance_rescale": rescale} if rescale else {}
    opts["empty_negative"] = 0  # the zero negative throughout, as AND prompts have it (the model's default differs)
    plain = generate(_req(model, n_images=2, sampler=sampler, steps=3, model_options=opts), registry, backend=backend)
    conj = generate(_req(model, n_images=2, sampler=sampler, steps=3, model_options=opts,
                         prompt="a red circle :1 AND a red circle :0"), registry, backend=backend)
    for a, b in zip(_arrays(plain), _arrays(conj), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # a U-Net batch of 3 rows instead of 2


def test_and_prompt_reproduces_and_differs_from_each_conjunct(tiny):
    registry, backend, model = tiny
    req = _req(model, prompt="a red circle AND two yellow stars :0.8", guidance=4.0, n_images=2)
    a, b = generate(req, registry, backend=backend), generate(req, registry, backend=backend)
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    one = generate(req.with_(seed=6, n_images=1), registry, backend=backend)
    assert np.array_equal(_arrays(one)[0], _arrays(a)[1])  # image k replays from seed + k
    for prompt in ("a red circle", "two yellow stars"):
        alone = generate(_req(model, prompt=prompt, guidance=4.0), registry, backend=backend)
        assert not np.array_equal(_arrays(alone)[0], _arrays(a)[0])
    assert a.prompt_used == req.prompt


def test_and_prompt_progress_cancel_and_batches(tiny):
    registry, backend, model = tiny
    req = _req(model, prompt="a red circle AND a blue square", n_images=3, steps=2)
    seen = []
    batched = generate(req.with_(model_options={"batch_size": 2}), registry, backend=backend,
                       callback=lambda s, t: seen.append((s, t)))
    assert seen == [(2, 6), (4, 6), (5, 6), (6, 6)]  # a batch of two advances two image-steps
    single = generate(req, registry, backend=backend)
    for x, y in zip(_arrays(batched), _arrays(single), strict=True):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    with pytest.raises(Cancelled):
        generate(req, registry, backend=backend, callback=lambda s, t: s < 3)


def test_and_prompt_errors_and_warnings(tiny):
    registry, backend, model = tiny
    with pytest.raises(RequestError, match="empty"):
        generate(_req(model, prompt="a red circle AND "), registry, backend=backend)
    for opts in ({"excite": "circle"}, {"hires_scale": 2}):
        with pytest.raises(RequestError, match="cannot be combined"):
            generate(_req(model, prompt="a red circle AND a blue square", model_options=opts), registry,
                     backend=backend)
    long = generate(_req(model, prompt="a red circle AND " + "blue square " * 60), registry, backend=backend)
    assert any("cut" in w for w in long.warnings)
