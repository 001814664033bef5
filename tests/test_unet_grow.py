"""Growing a U-Net deeper keeps its function: on tiny U-Nets, the grown one's output equals the small one's,
its old blocks are copies, its new blocks learn, and impossible growths are refused."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from t2i.unet.grow import grow_unet, grown_config
from t2i.unet.student import StudentRecipe, build_student

SMALL = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
             down_block_types=("CrossAttnDownBlock2D",) * 3, up_block_types=("CrossAttnUpBlock2D",) * 3,
             attention_head_dim=2, transformer_layers_per_block=(1, 1, 1), cross_attention_dim=8,
             norm_num_groups=4, use_linear_projection=True, addition_embed_type="text_time",
             addition_time_embed_dim=4, projection_class_embeddings_input_dim=32)


def _inputs(b: int = 2):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, 4, 8, 8, generator=g), torch.tensor([10, 700][:b]), torch.randn(b, 5, 8, generator=g),
            {"text_embeds": torch.randn(b, 8, generator=g), "time_ids": torch.ones(b, 6)})


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SMALL).eval()
    with torch.no_grad():  # diffusers zero-inits proj_out; give every weight a value so copies are visible
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet


@pytest.mark.parametrize(("layers", "depth"), [(2, (1, 2, 2)), (3, (1, 1, 1)), (1, (2, 3, 1)), (2, None)])
def test_grown_unet_computes_what_the_small_one_computes(small, layers, depth) -> None:
    big, report = grow_unet(small, layers, depth)
    assert big.config.layers_per_block == layers
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())
    x, t, ctx, added = _inputs()
    with torch.no_grad():
        want = small(x, t, ctx, added_cond_kwargs=added).sample
        got = big.eval()(x, t, ctx, added_cond_kwargs=added).sample
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert report.identity and len(set(report.sources.values())) == len(small.state_dict())


def test_old_blocks_are_copied_where_they_read_the_same_skip(small) -> None:
    big, report = grow_unet(small, 2, (1, 2, 2))
    s, b = small.state_dict(), big.state_dict()
    # up level: block 0 (reads the level below) stays first; the small one's last block is the grown one's last
    assert report.sources["up_blocks.0.resnets.0.conv1.weight"] == "up_blocks.0.resnets.0.conv1.weight"
    assert report.sources["up_blocks.1.resnets.2.conv1.weight"] == "up_blocks.1.resnets.1.conv1.weight"
    assert torch.equal(b["down_blocks.0.resnets.0.conv1.weight"], s["down_blocks.0.resnets.0.conv1.weight"])
    assert "up_blocks.1.resnets.1.conv1.weight" in report.identity
    assert torch.count_nonzero(b["up_blocks.1.resnets.1.conv2.weight"]) == 0
    assert torch.count_nonzero(b["down_blocks.2.attentions.0.transformer_blocks.1.ff.net.2.weight"]) == 0
    assert torch.count_nonzero(b["mid_block.attentions.0.transformer_blocks.1.attn2.to_out.0.weight"]) == 0


def test_new_blocks_get_gradients_and_training_moves_them(small) -> None:
    big, _ = grow_unet(small, 2, (1, 2, 2))
    x, t, ctx, added = _inputs()
    big.train()
    loss = big(x, t, ctx, added_cond_kwargs=added).sample.pow(2).mean()
    loss.backward()
    named = dict(big.named_parameters())
    for key in ("down_blocks.1.resnets.1.conv2.weight", "up_blocks.2.attentions.1.proj_out.weight",
                "down_blocks.2.attentions.0.transformer_blocks.1.attn1.to_out.0.weight"):
        assert named[key].grad is not None and named[key].grad.abs().sum() > 0, key


def test_growing_then_shrinking_with_koala_gives_back_the_small_unet(small) -> None:
    big, _ = grow_unet(small, 2, (1, 2, 2))
    back, report = build_student(big, StudentRecipe(1, (1, 1, 1), True))
    assert report.fresh == []
    for key, value in small.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_impossible_growths_are_refused(small) -> None:
    with pytest.raises(ValueError, match="never removes"):
        grown_config(dict(small.config), 0)
    with pytest.raises(ValueError, match="one count per level"):
        grown_config(dict(small.config), 2, (1, 2))
    with pytest.raises(ValueError, match="at least"):
        grow_unet(grow_unet(small, 1, (2, 2, 2))[0], 1, (1, 1, 1))
