"""The PatchGAN critic, its losses and the gradient balance; the decoder stage with the adversarial term on."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch

from t2i.cli import main
from t2i.paella import VQGANConfig, VQModel
from t2i.train.paella_tiny import PaellaTinyConfig, stage_vq_decoder
from t2i.train.patch_discriminator import PatchDiscriminator, balanced_weight, critic_loss, generator_loss
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene


def test_the_critic_scores_overlapping_patches() -> None:
    critic = PatchDiscriminator(8)
    assert critic(torch.rand(2, 3, 64, 64)).shape == (2, 1, 14, 14)
    assert critic(torch.rand(1, 3, 32, 48)).shape == (1, 1, 6, 10)
    with pytest.raises(ValueError, match="at least 1"):
        PatchDiscriminator(0)


def test_hinge_losses_vanish_past_the_margin_and_grow_inside_it() -> None:
    sure = critic_loss(torch.full((4,), 1.5), torch.full((4,), -2.0))
    assert sure.item() == 0.0
    unsure = critic_loss(torch.zeros(4), torch.zeros(4))
    assert unsure.item() == pytest.approx(1.0)
    assert generator_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_the_balance_matches_the_two_gradients_at_the_last_layer() -> None:
    w = torch.ones(3, requires_grad=True)
    rec, adv = (2 * w).sum(), (0.5 * w).sum()  # gradients 2 and 0.5 per element: a ratio of 4
    weight = balanced_weight(rec, adv, w)
    assert weight.item() == pytest.approx(4.0, rel=1e-3) and not weight.requires_grad
    assert balanced_weight((1e6 * w).sum(), (0 * w).sum(), w, cap=50.0).item() == 50.0


def _scenes(n: int) -> np.ndarray:
    rng = random.Random(3)
    return np.stack([np.asarray(render_scene(sample_scene(rng), 64)) for _ in range(n)])


def test_the_adversarial_term_moves_the_decoder_and_its_critic_resumes(tmp_path) -> None:
    """With the term on (critic_start 0) the decoder ends elsewhere than with pixel losses alone, from the same
    start and batches; the critic and its optimiser are checkpointed and a longer run goes on from them."""
    images = _scenes(8)
    base = dataclasses.replace(PaellaTinyConfig.smoke(), vq_decoder_steps=6, vq_decoder_lr=3e-3, warmup=1,
                               vq_batch=4)
    torch.manual_seed(0)
    start = VQModel(VQGANConfig.from_dict(base.vq)).eval()
    tokens = start.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    ends = {}
    for name, weight in (("plain", 0.0), ("adv", 1.0)):
        vq = VQModel(VQGANConfig.from_dict(base.vq)).eval()
        vq.load_state_dict(start.state_dict())
        cfg = dataclasses.replace(base, vq_decoder_adversarial=weight, vq_decoder_critic_start=0,
                                  vq_decoder_critic_width=4)
        losses: list[float] = []
        stage_vq_decoder(cfg, tmp_path / name, vq, tokens, images, lambda s, i, n, v, out=losses: out.append(v))
        assert len(losses) == 6 and all(np.isfinite(losses))
        ends[name] = vq.out_block[0].weight.detach().clone()
    assert not torch.allclose(ends["plain"], ends["adv"])
    state = torch.load(tmp_path / "adv" / "vqgan-decoder.ckpt", weights_only=True)
    assert state["step"] == 6 and "critic" in state and "critic_opt" in state
    plain = torch.load(tmp_path / "plain" / "vqgan-decoder.ckpt", weights_only=True)
    assert "critic" not in plain
    vq = VQModel(VQGANConfig.from_dict(base.vq)).eval()
    longer = dataclasses.replace(cfg, vq_decoder_steps=8)
    stage_vq_decoder(longer, tmp_path / "adv", vq, tokens, images)
    assert torch.load(tmp_path / "adv" / "vqgan-decoder.ckpt", weights_only=True)["step"] == 8


@pytest.mark.parametrize("bad", [{"vq_decoder_adversarial": -1.0}, {"vq_decoder_adversarial": float("nan")},
                                 {"vq_decoder_adversarial": 1.0, "vq_decoder_critic_start": -5}])
def test_a_negative_or_non_finite_adversarial_setting_is_refused(tmp_path, bad) -> None:
    images = _scenes(2)
    cfg = dataclasses.replace(PaellaTinyConfig.smoke(), vq_decoder_steps=2, **bad)
    vq = VQModel(VQGANConfig.from_dict(cfg.vq)).eval()
    with pytest.raises(ValueError, match="cannot be negative"):
        stage_vq_decoder(cfg, tmp_path, vq, vq.encode(torch.rand(2, 3, 64, 64)), images)


def test_the_flag_reaches_the_recipe_and_is_paella_only(tmp_path, capsys) -> None:
    first = tmp_path / "m1"
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w1"), "--out", str(first),
                 "--steps", "1"]) == 0
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "m2"), "--steps", "0", "--decoder-steps", "2",
                 "--decoder-adversarial", "0.5"]) == 0
    assert json.loads((tmp_path / "w2" / "config.json").read_text())["vq_decoder_adversarial"] == 0.5
    assert main(["train", "shapes-xl", "--smoke", "--work", str(tmp_path / "w3"), "--out", str(tmp_path / "m3"),
                 "--decoder-adversarial", "0.5"]) == 2
    assert "--decoder-adversarial" in capsys.readouterr().err


def test_a_work_folder_from_before_the_option_is_not_resumed_with_it(tmp_path) -> None:
    """A saved config without the key ran without the critic: asking for it now is refused, not a KeyError."""
    from t2i.train.paella_tiny import train_paella_tiny

    cfg = PaellaTinyConfig.smoke()
    work = tmp_path / "w"
    train_paella_tiny(cfg, work, tmp_path / "m")
    saved = json.loads((work / "config.json").read_text())
    for key in ("vq_decoder_adversarial", "vq_decoder_critic_start", "vq_decoder_critic_width"):
        del saved[key]
    (work / "config.json").write_text(json.dumps(saved))
    train_paella_tiny(cfg, work, tmp_path / "m")  # the same settings still resume
    with pytest.raises(ValueError, match="other settings"):
        train_paella_tiny(dataclasses.replace(cfg, vq_decoder_adversarial=0.5, vq_decoder_steps=4), work,
                          tmp_path / "m2")
