"""Regional attention processors on tiny tensors."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

from t2i.render.attention import MaterialisedRegionalAttnProcessor, RegionalAttnProcessor, RegionalState


def tiny_attention() -> Attention:
    """Heads 2 x 4 channels; v and out are identities on marked features so the output reads weights."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)
    with torch.no_grad():
        attn.to_v.weight.zero_()
        attn.to_v.weight[0, 0] = attn.to_v.weight[4, 0] = 1.0  # feature 0 (region-1 tokens) -> ch 0, 4
        attn.to_v.weight[1, 1] = attn.to_v.weight[5, 1] = 1.0  # feature 1 (global tokens) -> ch 1, 5
        attn.to_out[0].weight.copy_(torch.eye(8))
        attn.to_out[0].bias.zero_()
    return attn


def setup(cfg: bool, mode: str = "omost"):
    # latent 4x4; region 1 = the left half; 3 global tokens then 3 region-1 tokens
    masks = torch.zeros(2, 4, 4)
    masks[0] = 1
    masks[1, :, :2] = 1
    token_region = torch.tensor([0, 0, 0, 1, 1, 1])
    enc = torch.zeros(1, 6, 6)
    enc[0, :3, 1] = 1.0
    enc[0, 3:, 0] = 1.0
    enc = enc + 0.1 * torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(1))
    state = RegionalState(token_region, masks, cfg=cfg, n_negative=3, mode=mode)
    rows = 2 if cfg else 1
    hidden = torch.randn(rows, 16, 8, generator=torch.Generator().manual_seed(2))
    return state, hidden, enc.expand(rows, -1, -1)


@pytest.mark.parametrize("mode", ["omost", "couple"])
def test_pixels_outside_a_region_give_its_tokens_zero_weight(mode):
    attn = tiny_attention()
    state, hidden, enc = setup(cfg=False, mode=mode)
    out = RegionalAttnProcessor(state)(attn, hidden, enc)  # (1, 16, 8)
    region_weight = out[0, :, 0].reshape(4, 4)  # head 0's weight on region-1 tokens (values ~1)
    assert torch.all(region_weight[:, 2:].abs() < 0.15)  # right half: only the 0.1 noise of global tokens
    assert torch.all(region_weight[:, :2] > 0.3)
    assert torch.all(out[0, :, 1] > 0.05)  # global tokens are attended at every pixel


def test_omost_scaling_strengthens_the_region_over_couple():
    attn = tiny_attention()
    s_omost, hidden, enc = setup(cfg=False, mode="omost")
    s_couple, _, _ = setup(cfg=False, mode="couple")
    w_omost = RegionalAttnProcessor(s_omost)(attn, hidden, enc)[0, :, 0].reshape(4, 4)[:, :2]
    w_couple = RegionalAttnProcessor(s_couple)(attn, hidden, enc)[0, :, 0].reshape(4, 4)[:, :2]
    assert not torch.allclose(w_omost, w_couple)


def test_negative_rows_attend_their_own_tokens_everywhere():
    attn = tiny_attention()
    state, hidden, enc = setup(cfg=True)
    out = RegionalAttnProcessor(state)(attn, hidden, enc)
    assert torch.all(out[0, :, 0].abs() < 0.15)  # the negative row never looks at tokens 3..5
    plain = torch.nn.functional.scaled_dot_product_attention  # reference: ordinary attention on 3 tokens
    q = attn.to_q(hidden[:1]).view(1, 16, 2, 4).transpose(1, 2)
    k = attn.to_k(enc[:1, :3]).view(1, 3, 2, 4).transpose(1, 2)
    v = attn.to_v(enc[:1, :3]).view(1, 3, 2, 4).transpose(1, 2)
    want = attn.to_out[0](plain(q, k, v).transpose(1, 2).reshape(1, 16, 8))
    assert torch.allclose(out[:1], want, atol=1e-5)


@pytest.mark.parametrize(("cfg", "mode"), [(False, "omost"), (True, "omost"), (True, "couple")])
def test_fused_equals_the_materialised_reference(cfg, mode):
    attn = tiny_attention()
    state, hidden, enc = setup(cfg=cfg, mode=mode)
    fused = RegionalAttnProcessor(state)(attn, hidden, enc)
    ref = MaterialisedRegionalAttnProcessor(state)(attn, hidden, enc)
    assert torch.allclose(fused, ref, atol=1e-5)


def test_masks_follow_the_layer_size_and_small_regions_keep_a_pixel():
    masks = torch.zeros(2, 8, 8)
    masks[0] = 1
    masks[1, 0, 0] = 1  # one latent pixel: vanishes at 4x4 / 2x2 without the guard
    state = RegionalState(torch.tensor([0, 1]), masks, cfg=False)
    for n in (64, 16, 4, 1):
        bias, scale = state.for_length(n, torch.device("cpu"), torch.float32)
        assert bias.shape == (n, 2) and torch.isfinite(bias[:, 1]).sum() >= 1
        assert scale[0] == 1 and scale[1] == n / torch.isfinite(bias[:, 1]).sum()
    with pytest.raises(ValueError, match="pixels"):
        state.for_length(10, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="mode"):
        RegionalState(torch.tensor([0]), masks, cfg=False, mode="fancy")
