"""KOALA-style students: configurations (published counts on the real SDXL config), copied weights,
feature layers and hooks, on tiny U-Nets."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from t2i.distill.features import capture, feature_layers
from t2i.unet.student import StudentRecipe, build_student, koala_recipe, student_config

SDXL = dict(sample_size=128, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816, layers_per_block=2, transformer_layers_per_block=(1, 2, 10))
TINY = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=2,
            transformer_layers_per_block=(1, 2, 4), cross_attention_dim=8, norm_num_groups=4,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=32)


@pytest.mark.parametrize(("name", "count", "layers"), [("koala-1b", 1_161_184_324, [1, 2, 6]),
                                                       ("koala-700m", 782_822_724, [1, 2, 5])])
def test_koala_students_of_sdxl_have_the_published_sizes(name, count, layers) -> None:
    cfg = student_config(SDXL, koala_recipe(name, SDXL))
    with torch.device("meta"):
        unet = UNet2DConditionModel(**cfg)
    assert sum(p.numel() for p in unet.parameters()) == count and cfg["transformer_layers_per_block"] == layers
    assert (unet.mid_block is None) == (name == "koala-700m")


def _inputs(b: int = 1):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, 4, 8, 8, generator=g), torch.tensor([10] * b), torch.randn(b, 5, 8, generator=g),
            {"text_embeds": torch.randn(b, 8, generator=g), "time_ids": torch.ones(b, 6)})


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY).eval()


def test_students_copy_the_kept_blocks(teacher) -> None:
    student, report = build_student(teacher, koala_recipe("koala-700m", teacher.config))
    assert student.config.layers_per_block == 1 and student.mid_block is None
    assert report.fresh == []  # every student tensor has a teacher source of its shape
    t, s = teacher.state_dict(), student.state_dict()
    # the up level's last block reads the skip from above: it starts from the teacher's last (index 2)
    assert report.sources["up_blocks.0.resnets.1.conv1.weight"] == "up_blocks.0.resnets.2.conv1.weight"
    assert torch.equal(s["up_blocks.0.resnets.1.conv1.weight"], t["up_blocks.0.resnets.2.conv1.weight"])
    assert torch.equal(s["down_blocks.2.attentions.0.transformer_blocks.1.attn1.to_q.weight"],
                       t["down_blocks.2.attentions.0.transformer_blocks.1.attn1.to_q.weight"])
    assert "down_blocks.2.attentions.0.transformer_blocks.2.attn1.to_q.weight" not in s  # 4 -> 2 layers
    assert student(*_inputs()[:3], added_cond_kwargs=_inputs()[3]).sample.shape == (1, 4, 8, 8)


def test_custom_recipes_and_their_errors(teacher) -> None:
    student, _ = build_student(teacher, StudentRecipe(2, (1, 1, 3), True))
    assert student.config.transformer_layers_per_block == [1, 1, 3] and student.mid_block is not None
    for bad in (StudentRecipe(3), StudentRecipe(1, (1, 2, 5)), StudentRecipe(1, (1, 2))):
        with pytest.raises(ValueError):
            student_config(teacher.config, bad)
    with pytest.raises(ValueError, match="unknown student recipe"):
        koala_recipe("koala-3b", teacher.config)


def test_feature_layers_pair_self_attention_of_matching_blocks_and_hooks_catch_them(teacher) -> None:
    student, _ = build_student(teacher, koala_recipe("koala-1b", teacher.config))
    pairs = feature_layers(student, teacher, pairing="last")
    assert ("down_blocks.2.attentions.0.transformer_blocks.1.attn1",
            "down_blocks.2.attentions.0.transformer_blocks.3.attn1") in pairs
    assert ("up_blocks.0.attentions.1.transformer_blocks.1.attn1",
            "up_blocks.0.attentions.2.transformer_blocks.3.attn1") in pairs
    assert any(p[0].startswith("mid_block") for p in pairs)
    x, t, ctx, added = _inputs(2)
    with capture(student, [p[0] for p in pairs]) as s_feats, capture(teacher, [p[1] for p in pairs]) as t_feats:
        student(x, t, ctx, added_cond_kwargs=added)
        teacher(x, t, ctx, added_cond_kwargs=added)
    assert set(s_feats) == {p[0] for p in pairs} and set(t_feats) == {p[1] for p in pairs}
    for s_name, t_name in pairs:
        assert s_feats[s_name].shape == t_feats[t_name].shape
    assert not student.get_submodule(pairs[0][0])._forward_hooks  # hooks removed after the block
    assert feature_layers(student, teacher, "cross_attention")[0][0].endswith("attn2")
    for kind in ("block", "resnet"):  # whole modules with their copy sources: copied and last agree
        assert feature_layers(student, teacher, kind) == feature_layers(student, teacher, kind, "last")
    assert feature_layers(student, teacher) == feature_layers(student, teacher, pairing="copied")  # the default
    with pytest.raises(ValueError, match="feature kind"):
        feature_layers(student, teacher, "everything")


def test_feature_pairings_copied_and_stage(teacher) -> None:
    student, report = build_student(teacher, koala_recipe("koala-1b", teacher.config))  # deepest level 4 -> 2
    copied = feature_layers(student, teacher, pairing="copied")
    # the student's last layer of the deepest down block pairs with the teacher layer it was copied from
    assert ("down_blocks.2.attentions.0.transformer_blocks.1.attn1",
            "down_blocks.2.attentions.0.transformer_blocks.1.attn1") in copied
    for s_name, t_name in copied:  # every pair is a copy of its teacher layer, so it starts equal
        assert report.sources[s_name + ".to_q.weight"] == t_name + ".to_q.weight"
    stage = feature_layers(student, teacher, pairing="stage")
    # one pair per stage with attention: down 1, down 2, mid, up 0, up 1; the teacher's last block of each
    assert sorted(s.split(".attentions")[0] for s, _ in stage) == ["down_blocks.1", "down_blocks.2", "mid_block",
                                                                   "up_blocks.0", "up_blocks.1"]
    assert ("down_blocks.2.attentions.0.transformer_blocks.1.attn1",
            "down_blocks.2.attentions.1.transformer_blocks.3.attn1") in stage
    assert ("up_blocks.0.attentions.1.transformer_blocks.1.attn1",
            "up_blocks.0.attentions.2.transformer_blocks.3.attn1") in stage
    assert feature_layers(student, teacher, "cross_attention", "stage")[0][0].endswith("attn2")
    with pytest.raises(ValueError, match="feature pairing"):
        feature_layers(student, teacher, pairing="nearest")
    with pytest.raises(ValueError, match="attention kinds"):
        feature_layers(student, teacher, "resnet", "stage")
