"""Paella's prior (tiny configurations) and the attention reweighting of image-embedding tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from t2i.cancel import Cancelled, CancelToken
from t2i.paella import Paella
from t2i.paella.blocks import Attention2D
from t2i.paella.checkpoints import load_strict
from t2i.paella.prior import Prior, PriorConfig, alpha_bar, prior_loss, rename_prior_keys, sample_prior

from .test_paella import TINY

SMALL = PriorConfig(c_clip=8, c_hidden=32, depth=2, c_r=8, dropout=0.0)


def test_the_full_prior_has_the_published_size() -> None:
    with torch.device("meta"):
        prior = Prior(PriorConfig())
    assert len(prior.blocks) == 48
    assert 0.85e9 < sum(p.numel() for p in prior.parameters()) < 0.95e9


def test_cosine_schedule_ends() -> None:
    assert float(alpha_bar(torch.tensor(0.0))) > 0.999 and 1e-4 < float(alpha_bar(torch.tensor(1.0))) < 2e-3


def test_training_learns_a_text_to_image_map_and_sampling_follows_it() -> None:
    torch.manual_seed(0)
    mix = torch.randn(8, 8) / math.sqrt(8)
    prior = Prior(SMALL)
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    losses = []
    for step in range(300):
        g = torch.Generator().manual_seed(step)
        text = torch.randn(64, 8, generator=g)
        loss = prior_loss(prior, text @ mix, text, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:30])
    text = torch.randn(4, 8, generator=torch.Generator().manual_seed(999))
    gens = [torch.Generator().manual_seed(s) for s in range(4)]
    out = sample_prior(prior.eval(), text, gens, steps=20, cfg=1.0, x0_clip=3.0)
    again = sample_prior(prior, text, [torch.Generator().manual_seed(s) for s in range(4)], steps=20, cfg=1.0,
                         x0_clip=3.0)
    assert torch.equal(out, again)
    target = text @ mix
    err = (out - target).pow(2).mean() / target.pow(2).mean()
    assert err < 0.5  # closer to the right embedding than to nothing
    guided = sample_prior(prior, text, [torch.Generator().manual_seed(s) for s in range(4)], steps=20, cfg=3.0,
                          x0_clip=3.0)
    assert not torch.equal(guided, out)
    with pytest.raises(Cancelled):
        sample_prior(prior, text, gens, steps=5, progress=lambda i, n: i < 2)
    token, seen = CancelToken(), []
    with pytest.raises(Cancelled, match="prior step 3 of 5"):  # set during step 2: step 3 never starts
        sample_prior(prior, text, gens, steps=5, cancel=token,
                     progress=lambda i, n: seen.append(i) or (token.cancel() if i == 2 else None))
    assert seen == [1, 2]
    with pytest.raises(Cancelled, match="prior step 1 of 5"):
        sample_prior(prior, text, gens, steps=5, cancel=token)


def test_rename_table_is_the_one_place_to_adapt_released_names() -> None:
    prior = Prior(SMALL)
    released = {k.replace("blocks.", "layers.", 1) if k.startswith("blocks.") else k: v
                for k, v in prior.state_dict().items()}
    with pytest.raises(ValueError, match="missing keys: blocks"):
        load_strict(Prior(SMALL), released, "prior")
    renamed = rename_prior_keys(released, (("layers.", "blocks."),))
    fresh = Prior(SMALL)
    load_strict(fresh, renamed, "prior")
    assert torch.equal(fresh.blocks[1].mlp[0].weight, prior.blocks[1].mlp[0].weight)


def test_kv_bias_reweights_attention_exactly() -> None:
    torch.manual_seed(0)
    att = Attention2D(4, 1).eval()
    x, kv = torch.randn(1, 4, 2, 2), torch.randn(1, 3, 4)
    w = torch.tensor([1.0, 1.0, 5.0])
    out = att(x, kv, self_attn=False, kv_bias=w.log())
    q_w, k_w, v_w = att.attn.in_proj_weight.chunk(3)
    q_b, k_b, v_b = att.attn.in_proj_bias.chunk(3)
    q = x.flatten(2).transpose(1, 2)[0] @ q_w.T + q_b
    k, v = kv[0] @ k_w.T + k_b, kv[0] @ v_w.T + v_b
    p = (q @ k.T / 2).softmax(-1) * w  # probabilities scaled by the weights, then renormalised
    manual = (p / p.sum(-1, keepdim=True)) @ v @ att.attn.out_proj.weight.T + att.attn.out_proj.bias
    assert torch.allclose(out[0].flatten(1).T, manual, atol=1e-5)


def test_image_token_weight_one_is_off_and_other_weights_change_the_logits() -> None:
    torch.manual_seed(0)
    model = Paella(TINY).eval()
    torch.nn.init.normal_(model.clf[1].weight, std=0.2)  # zero at init: the logits would not depend on anything
    args = (torch.randint(0, 32, (1, 8, 8)), torch.rand(1), torch.randn(1, 5, 16))
    image = torch.randn(1, 8)
    base = model(*args, clip_image=image)
    assert torch.equal(base, model(*args, clip_image=image, clip_image_weight=1.0))
    assert not torch.allclose(base, model(*args, clip_image=image, clip_image_weight=4.0))
    with pytest.raises(ValueError, match="positive"):
        model(*args, clip_image=image, clip_image_weight=0.0)
