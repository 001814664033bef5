"""Targets, noising and loss weights of the diffusion recipes (pure logic, no model)."""

import pytest
import torch

from t2i.train.diffusion import alphas_cumprod, check_parametrisation, min_snr_weight, noised, target
from t2i.train.shapes_xl import ShapesXLConfig, build_scheduler


def test_default_shapes_xl_schedule_is_v_prediction_at_zero_terminal_snr():
    config = dict(build_scheduler().config)
    assert config["prediction_type"] == "v_prediction"
    assert config["rescale_betas_zero_snr"] and config["timestep_spacing"] == "trailing"
    alphas = alphas_cumprod(config)
    assert alphas.shape == (1000,)
    assert alphas[-1] == 0  # pure noise at the last training step
    plain = alphas_cumprod(dict(build_scheduler(ShapesXLConfig(prediction_type="epsilon",
                                                               zero_terminal_snr=False)).config))
    assert 0.004 < plain[-1] < 0.005  # SDXL's own schedule leaks 0.068 x0 into x_T


def test_v_target_recovers_the_image_and_the_noise():
    alphas = alphas_cumprod(dict(build_scheduler().config))
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    xt, v = noised(alphas, x0, noise, t), target("v_prediction", alphas, x0, noise, t)
    a = alphas[t].view(-1, 1, 1, 1)
    assert torch.allclose(a.sqrt() * xt - (1 - a).sqrt() * v, x0, atol=1e-5)
    assert torch.allclose((1 - a).sqrt() * xt + a.sqrt() * v, noise, atol=1e-5)
    assert torch.equal(xt[2], noise[2])  # at zero SNR nothing of x0 is left
    assert torch.equal(target("epsilon", alphas, x0, noise, t), noise)


def test_min_snr_weights():
    alphas = alphas_cumprod(dict(build_scheduler().config))
    t = torch.tensor([0, 999])
    snr0 = alphas[0] / (1 - alphas[0])
    w = min_snr_weight("v_prediction", alphas, t, 5.0)
    assert torch.allclose(w, torch.stack([5.0 / (snr0 + 1), torch.tensor(1.0)]))  # the pure-noise step keeps weight 1
    plain = alphas_cumprod(dict(build_scheduler(ShapesXLConfig(prediction_type="epsilon",
                                                               zero_terminal_snr=False)).config))
    snr = plain / (1 - plain)
    assert torch.allclose(min_snr_weight("epsilon", plain, t, 5.0), torch.stack([5.0 / snr[0], torch.tensor(1.0)]))


def test_bad_parametrisations_are_refused():
    with pytest.raises(ValueError, match="v_prediction"):
        check_parametrisation("epsilon", True)
    with pytest.raises(ValueError, match="prediction_type"):
        check_parametrisation("sample", False)
    with pytest.raises(ValueError, match="v_prediction"):
        build_scheduler(ShapesXLConfig(prediction_type="epsilon"))
