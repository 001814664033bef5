"""Paella: the released architecture's names and sizes (meta device), strict loading, the sampler and the
pipeline on tiny configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2i.cancel import Cancelled, CancelToken
from t2i.paella import Paella, PaellaConfig, SamplerSettings, VQGANConfig, VQModel, sample_tokens
from t2i.paella.checkpoints import convert_to_safetensors, load_strict, read_state_dict
from t2i.paella.pipeline import PaellaPipeline
from t2i.paella.text import tiny_byt5_encoder

TINY = PaellaConfig(c_in=8, c_out=8, num_labels=32, c_r=8, c_cond=16, c_hidden=(16, 32), nhead=(-1, 2),
                    blocks=(1, 1), level_config=("CT", "CTA"), clip_embd=8, byt5_embd=16, clip_seq_len=2, dropout=0.0)
TINY_VQ = VQGANConfig(levels=2, bottleneck_blocks=1, c_hidden=16, c_latent=4, codebook_size=32)


def test_the_released_token_model_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = Paella(PaellaConfig())
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 1_008_350_592 and len(state) == 844
    expected = {"byt5_mapper.weight": (1024, 2560), "clip_mapper.weight": (4096, 1024),
                "clip_image_mapper.weight": (4096, 1024), "in_mapper.0.weight": (8192, 256),
                "embedding.1.weight": (640, 1024, 1, 1), "clf.1.weight": (1024, 640, 1, 1),
                "out_mapper.1.weight": (8192, 256, 1, 1), "down_blocks.0.0.depthwise.weight": (640, 1, 3, 3),
                "down_blocks.0.0.channelwise.2.gamma": (1, 1, 1, 2560), "down_blocks.0.0.channelwise.4.weight":
                (640, 2560), "down_blocks.1.0.1.weight": (1280, 640, 2, 2),
                "down_blocks.1.3.attention.attn.in_proj_weight": (3840, 1280),
                "down_blocks.1.3.attention.attn.out_proj.weight": (1280, 1280),
                "down_blocks.1.3.kv_mapper.1.weight": (1280, 1024), "down_blocks.0.1.mapper.weight": (1280, 64),
                "up_blocks.1.0.depthwise.weight": (1280, 2, 3, 3), "up_blocks.2.0.depthwise.weight": (640, 2, 3, 3),
                "up_blocks.0.18.1.weight": (1280, 1280, 2, 2)}
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key


def test_the_released_vqgan_on_the_meta_device() -> None:
    with torch.device("meta"):
        vq = VQModel(VQGANConfig())
    n = sum(p.numel() for p in vq.parameters())
    assert 18_300_000 < n < 18_500_000
    state = vq.state_dict()
    assert tuple(state["vquantizer.codebook.weight"].shape) == (8192, 4)
    assert tuple(state["in_block.1.weight"].shape) == (192, 12, 1, 1)
    assert tuple(state["down_blocks.0.gammas"].shape) == (6,) and "down_blocks.3.1.running_var" in state
    assert tuple(state["up_blocks.13.weight"].shape) == (384, 192, 4, 4)  # after 12 bottleneck blocks


def test_more_blocks_per_vqgan_level_keep_shapes_and_add_spatial_mixing() -> None:
    from dataclasses import replace

    one, two = VQModel(TINY_VQ), VQModel(replace(TINY_VQ, level_blocks=2))
    count = lambda m: sum(isinstance(x, torch.nn.Conv2d) and x.groups > 1 for x in m.modules())  # noqa: E731
    assert count(two) == count(one) + 3  # one more depthwise conv per encoder level and the upper decoder level
    x = torch.rand(2, 3, 16, 16)
    tokens = two.encode(x)
    assert tokens.shape == (2, 4, 4) and two.decode(tokens).shape == x.shape
    with pytest.raises(ValueError, match="at least 1"):
        VQModel(replace(TINY_VQ, level_blocks=0))


def test_a_full_resolution_vqgan_stage_adds_dense_convolutions_at_both_ends_only_when_asked() -> None:
    from dataclasses import replace

    from t2i.paella.vqgan import PixelResBlock

    released = set(VQModel(TINY_VQ).state_dict())
    pixel = VQModel(replace(TINY_VQ, pixel_channels=8, pixel_blocks=2))
    blocks = [m for m in pixel.modules() if isinstance(m, PixelResBlock)]
    assert len(blocks) == 4  # two before the unshuffle, two after the shuffle
    # the stage sits at full resolution: a 16x16 image meets it at 16x16 on both ends
    seen: list[tuple[int, ...]] = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for b in blocks]
    x = torch.rand(2, 3, 16, 16)
    tokens = pixel.encode(x)
    assert tokens.shape == (2, 4, 4) and pixel.decode(tokens).shape == x.shape
    for h in hooks:
        h.remove()
    assert set(seen) == {(2, 8, 16, 16)}
    # everything between the two ends keeps the released names and shapes
    inner = {k for k in pixel.state_dict() if not k.startswith(("in_block", "out_block"))}
    assert inner == {k for k in released if not k.startswith(("in_block", "out_block"))}
    with pytest.raises(ValueError, match="negative"):
        VQModel(replace(TINY_VQ, pixel_channels=-1))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Paella(TINY).eval(), VQModel(TINY_VQ).eval()


def _cond(b: int, s: int = 5) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"byt5": torch.randn(b, s, 16, generator=g), "clip": None, "clip_image": None}


def test_forward_shapes_and_grid_errors(tiny) -> None:
    model, vq = tiny
    tokens = torch.randint(0, 32, (2, 8, 12))
    logits = model(tokens, torch.rand(2), torch.randn(2, 5, 16), clip=torch.randn(2, 8), clip_image=torch.randn(2, 8))
    assert logits.shape == (2, 32, 8, 12)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.randint(0, 32, (1, 6, 8)), torch.rand(1), torch.randn(1, 5, 16))
    images = vq.decode(tokens)
    assert images.shape == (2, 3, 32, 48) and 0 <= images.min() and images.max() <= 1
    assert vq.encode(images).shape == (2, 8, 12)
    with pytest.raises(ValueError, match="multiple of 4"):
        vq.encode(torch.rand(1, 3, 30, 32))


def test_codebook_lookup_round_trips_through_nearest_neighbour(tiny) -> None:
    _, vq = tiny
    idx = torch.randint(0, 32, (1, 3, 3))
    assert torch.equal(vq.vquantizer.indices(vq.vquantizer.lookup(idx)), idx)


def test_strict_loading_lists_missing_extra_and_misshapen_keys(tiny, tmp_path) -> None:
    model, _ = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.pop("clf.1.weight")
    state["surprise.weight"] = torch.zeros(1)
    state["byt5_mapper.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as e:
        load_strict(Paella(TINY), state, "generator")
    assert "missing keys: clf.1.weight" in str(e.value) and "unexpected keys: surprise.weight" in str(e.value)
    assert "byt5_mapper.weight (3, 3)" in str(e.value)
    path = tmp_path / "paella.pt"
    torch.save(model.state_dict(), path)
    fresh = Paella(TINY)
    load_strict(fresh, read_state_dict(path), "generator")
    assert torch.equal(fresh.clf[1].weight, model.clf[1].weight)
    assert convert_to_safetensors(path, tmp_path / "paella.safetensors") == len(model.state_dict())
    assert torch.equal(read_state_dict(tmp_path / "paella.safetensors")["in_mapper.0.weight"],
                       model.in_mapper[0].weight)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(path)
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="expected .safetensors"):
        read_state_dict(tmp_path / "w.txt")


def _gens(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_sampler_is_deterministic_by_seed_and_batch_independent(tiny) -> None:
    model, _ = tiny
    s = SamplerSettings(steps=4, renoise_steps=3, cfg=3.0)
    a = sample_tokens(model, _cond(2), _cond(2, 3), (8, 8), s, _gens([5, 6]))
    b = sample_tokens(model, _cond(2), _cond(2, 3), (8, 8), s, _gens([5, 6]))
    alone = sample_tokens(model, _cond(1), _cond(1, 3), (8, 8), s, _gens([6]))
    assert torch.equal(a, b) and torch.equal(a[1:], alone) and not torch.equal(a[0], a[1])


class _Counting(torch.nn.Module):
    """Wraps a model; logs which conditioning each call got."""

    def __init__(self, model: Paella) -> None:
        super().__init__()
        self.model, self.cfg, self.calls = model, model.cfg, []

    def check_grid(self, h: int, w: int) -> None:
        self.model.check_grid(h, w)

    def forward(self, x, r, byt5, clip=None, clip_image=None):
        self.calls.append((byt5.shape[1], float(r[0])))
        return self.model(x, r, byt5, clip, clip_image)


def test_cfg_only_for_the_first_steps_and_levels_go_from_one_to_zero(tiny) -> None:
    model, _ = tiny
    counting = _Counting(model)
    s = SamplerSettings(steps=4, renoise_steps=3, cfg=3.0, cfg_steps=2)
    sample_tokens(counting, _cond(1), _cond(1, 3), (8, 8), s, _gens([1]))
    # cond (5 tokens) then uncond (3 tokens) for steps 0 and 1, cond alone after
    assert [c[0] for c in counting.calls] == [5, 3, 5, 3, 5, 5]
    assert [c[1] for c in counting.calls[::2][:2]] == [1.0, 0.75] and counting.calls[-1][1] == 0.25
    plain = sample_tokens(model, _cond(1), _cond(1, 3), (8, 8), SamplerSettings(steps=4, renoise_steps=3, cfg=1.0),
                          _gens([1]))
    no_cfg_steps = sample_tokens(model, _cond(1), _cond(1, 3), (8, 8),
                                 SamplerSettings(steps=4, renoise_steps=3, cfg=3.0, cfg_steps=0), _gens([1]))
    assert torch.equal(plain, no_cfg_steps)


def test_a_conjunction_of_one_prompt_samples_as_that_prompt_and_weights_must_match(tiny) -> None:
    model, _ = tiny
    s = SamplerSettings(steps=4, renoise_steps=3, cfg=3.0, cfg_steps=3)
    plain = sample_tokens(model, _cond(2), _cond(2, 3), (8, 8), s, _gens([5, 6]))
    conj = sample_tokens(model, [_cond(2), _cond(2, 4)], _cond(2, 3), (8, 8), s, _gens([5, 6]), weights=[1.0, 0.0])
    # logits u + 3 * (1 * (c - u) + 0 * (c' - u)) against torch.lerp(u, c, 3): equal up to rounding
    assert (plain == conj).float().mean() > 0.95
    counting = _Counting(model)
    sample_tokens(counting, [_cond(1), _cond(1, 4)], _cond(1, 3), (8, 8), s, _gens([1]), weights=[1.0, 1.0])
    # every step: each conjunct, then the unconditional call (also after cfg_steps: the weights still apply)
    assert [c[0] for c in counting.calls] == [5, 4, 3] * 4
    with pytest.raises(ValueError, match="as many weights"):
        sample_tokens(model, [_cond(2), _cond(2, 4)], _cond(2, 3), (8, 8), s, _gens([5, 6]), weights=[1.0])


class _Sure(torch.nn.Module):
    """A model certain of token 7 everywhere; records its inputs."""

    cfg = TINY

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def check_grid(self, h: int, w: int) -> None:
        pass

    def forward(self, x, r, byt5, clip=None, clip_image=None):
        self.inputs.append(x.clone())
        logits = torch.full((x.shape[0], 32, *x.shape[1:]), -1e4)
        logits[:, 7] = 0
        return logits


def test_renoise_puts_back_the_initial_noise_and_cancel_stops() -> None:
    sure = _Sure()
    out = sample_tokens(sure, _cond(1), _cond(1), (32, 32), SamplerSettings(steps=2, renoise_steps=1, cfg=1.0),
                        _gens([3]))
    assert (out == 7).all()  # the last step is never re-noised
    noise = torch.randint(0, 32, (32, 32), generator=torch.Generator().manual_seed(3))
    assert torch.equal(sure.inputs[0][0], noise)  # step 0 starts from the initial noise
    second = sure.inputs[1][0]  # after step 0, re-noised to t = 0.5 with the same noise tokens
    assert ((second == 7) | (second == noise)).all()
    assert 0.4 < (second == noise).float().mean().item() < 0.6
    seen: list[int] = []
    with pytest.raises(Cancelled):
        sample_tokens(_Sure(), _cond(1), _cond(1), (8, 8), SamplerSettings(steps=4, renoise_steps=3, cfg=1.0),
                      _gens([3]), progress=lambda i, n: seen.append(i) or i < 2)
    assert seen == [1, 2]


def test_the_cancel_token_stops_the_sampler_within_one_step() -> None:
    token, seen = CancelToken(), []

    def progress(i: int, n: int) -> None:  # the token is set (as from another thread) during step 2
        seen.append(i)
        if i == 2:
            token.cancel("test")

    sure = _Sure()
    with pytest.raises(Cancelled, match="step 3 of 4: test"):
        sample_tokens(sure, _cond(1), _cond(1), (8, 8), SamplerSettings(steps=4, renoise_steps=3, cfg=1.0),
                      _gens([3]), progress=progress, cancel=token)
    assert seen == [1, 2] and len(sure.inputs) == 2  # step 3 never ran
    sure = _Sure()
    with pytest.raises(Cancelled):  # set before the start: no step runs
        sample_tokens(sure, _cond(1), _cond(1), (8, 8), SamplerSettings(steps=4, renoise_steps=3, cfg=1.0),
                      _gens([3]), cancel=token)
    assert sure.inputs == []


def test_bad_sampler_settings() -> None:
    for bad in (SamplerSettings(steps=0), SamplerSettings(steps=4, renoise_steps=4),
                SamplerSettings(temperature=(0.0, 1.0))):
        with pytest.raises(ValueError):
            bad.validate()


def test_pipeline_saves_and_loads_and_draws_the_same_images(tiny, tmp_path) -> None:
    model, vq = tiny
    torch.manual_seed(0)
    pipe = PaellaPipeline(model, vq, tiny_byt5_encoder(d_model=16, layers=1, heads=2, d_ff=32), max_length=16)
    s = SamplerSettings(steps=3, renoise_steps=2, cfg=2.0)
    images = pipe("a red circle", "", seeds=[1, 2], height=32, width=32, settings=s)
    assert [im.size for im in images] == [(32, 32)] * 2
    again = PaellaPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "p"))
    same = again("a red circle", "", seeds=[1, 2], height=32, width=32, settings=s)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, same, strict=True))
    with pytest.raises(ValueError, match="multiples of 16"):
        pipe("x", height=40, width=32)
    (tmp_path / "p" / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with pytest.raises(ValueError, match="not PaellaPipeline"):
        PaellaPipeline.from_pretrained(tmp_path / "p")


def test_clip_text_and_image_conditioning_round_trip_and_image_variations(tiny, tmp_path) -> None:
    import copy

    from PIL import Image
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from t2i.train.tokenizer import load_tokenizer, words_of, write_word_tokenizer

    model, vq = copy.deepcopy(tiny[0]), tiny[1]
    torch.manual_seed(0)
    torch.nn.init.normal_(model.clf[1].weight, std=0.2)  # zero at init: make the logits depend on the input
    tok = load_tokenizer(write_word_tokenizer(words_of(["a red circle"]), tmp_path / "tok"))
    clip_text = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                                           num_hidden_layers=1, num_attention_heads=2,
                                                           projection_dim=8, max_position_embeddings=77,
                                                           bos_token_id=tok.bos_token_id,
                                                           eos_token_id=tok.eos_token_id))
    clip_vision = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16,
                                                                 intermediate_size=32, num_hidden_layers=1,
                                                                 num_attention_heads=2, projection_dim=8))
    pipe = PaellaPipeline(model, vq, tiny_byt5_encoder(16, 1, 2, 32), 16, clip_text, tok, clip_vision)
    s = SamplerSettings(steps=2, renoise_steps=1, cfg=2.0)
    emb = pipe.image_embedding(Image.new("RGB", (48, 40), (255, 0, 0)))
    assert emb.shape == (1, 8)
    plain = pipe("a red circle", seeds=[3], height=32, width=32, settings=s)[0]
    varied = pipe("a red circle", seeds=[3], height=32, width=32, settings=s, clip_image=emb, clip_image_weight=2.0)[0]
    assert not np.array_equal(np.asarray(plain), np.asarray(varied))
    loaded = PaellaPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "p"))
    assert loaded.clip_text_encoder is not None and loaded.clip_image_encoder is not None
    again = loaded("a red circle", seeds=[3], height=32, width=32, settings=s, clip_image=loaded.image_embedding(
        Image.new("RGB", (48, 40), (255, 0, 0))), clip_image_weight=2.0)[0]
    assert np.array_equal(np.asarray(varied), np.asarray(again))
    with pytest.raises(ValueError, match="no CLIP image encoder"):
        PaellaPipeline(model, vq, tiny_byt5_encoder(16, 1, 2, 32), 16).image_embedding(Image.new("RGB", (8, 8)))


def test_a_refiner_is_decoder_only_and_starts_as_the_decoder_it_joins() -> None:
    from dataclasses import replace

    from t2i.train.paella_tiny import with_refiner

    torch.manual_seed(0)
    base = VQModel(TINY_VQ).eval()
    for p in base.parameters():  # open the zero-initialised gates so the decoder does something
        p.data.normal_(0, 0.2)
    refined = with_refiner(base, 8)
    extra = set(refined.state_dict()) - set(base.state_dict())
    assert extra and all(k.startswith("refiner.") for k in extra)
    assert set(base.state_dict()) <= set(refined.state_dict())  # every released key stays
    x = torch.rand(2, 3, 16, 16)
    tokens = base.encode(x)
    assert torch.equal(refined.encode(x), tokens)  # the codes stay
    assert torch.equal(refined.decode(tokens), base.decode(tokens))  # zero last conv: the same images
    # what a decoder stage trains includes the refiner, and the refiner reaches the pixels once it moves
    trained = {id(p) for p in refined.decoder_parameters()}
    assert all(id(p) in trained for p in refined.refiner.parameters())
    assert not any(id(p) in trained for p in refined.down_blocks.parameters())
    torch.nn.init.normal_(refined.refiner.conv_out.weight, 0, 0.1)
    assert not torch.equal(refined.decode(tokens), base.decode(tokens))
    with pytest.raises(ValueError, match="has a refiner already"):
        with_refiner(refined, 8)
    with pytest.raises(ValueError, match="cannot be negative"):
        VQModel(replace(TINY_VQ, refine_channels=-1))
    with pytest.raises(ValueError, match="multiple of 4"):
        VQModel(replace(TINY_VQ, c_hidden=12, refine_channels=4))  # c0 = 6 half-resolution channels


def save_tiny_variation_pipeline(folder, steps: int):
    """A tiny Paella pipeline with a CLIP image encoder (so that it makes image variations), saved to
    `folder` with 32x32 defaults and `steps` sampler steps; returns the saved folder."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from t2i.paella.pipeline import PaellaPipeline
    from t2i.paella.text import tiny_byt5_encoder

    torch.manual_seed(0)
    model = Paella(TINY)
    torch.nn.init.normal_(model.clf[1].weight, std=0.2)  # zero at init: make the logits depend on the input
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16,
                                                            intermediate_size=32, num_hidden_layers=1,
                                                            num_attention_heads=2, projection_dim=8))
    pipe = PaellaPipeline(model, VQModel(TINY_VQ), tiny_byt5_encoder(16, 1, 2, 32), 16, clip_image_encoder=vision)
    return pipe.save_pretrained(folder, {"steps": steps, "guidance": 2.0, "width": 32, "height": 32})

