"""The shapes-world CLIP stage: hard negatives, the loss, and a short run that learns."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from t2i.train.shapes_clip import (
    PERTURBATIONS,
    ClipSettings,
    ImageTower,
    caption_batch,
    clip_accuracy,
    clip_loss,
    perturb,
    train_clip,
)
from t2i.world.scene import Scene, SceneObject


def _two_objects() -> dict:
    return Scene(background="white", objects=(
        SceneObject("circle", "red", location="on the left", area="a small square area"),
        SceneObject("square", "blue", location="on the right", area="a small square area"),
    )).to_dict()


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_a_perturbation_changes_exactly_one_attribute(kind: str) -> None:
    scene = _two_objects()
    before = Scene.from_dict(scene)
    after = Scene.from_dict(perturb(scene, kind, random.Random(3)))
    assert after != before
    assert after.background == before.background
    pairs_before = sorted((o.shape, o.color) for o in before.objects)
    pairs_after = sorted((o.shape, o.color) for o in after.objects)
    boxes_before = sorted((o.location, o.offset, o.area) for o in before.objects)
    boxes_after = sorted((o.location, o.offset, o.area) for o in after.objects)
    assert boxes_after == boxes_before  # nothing moves off the scene's boxes
    if kind == "swap_places":
        assert pairs_after == pairs_before  # same objects, other places
        place = {(o.shape, o.color): o.location for o in before.objects}
        assert all(place[(o.shape, o.color)] != o.location for o in after.objects)
    elif kind == "swap_colors":
        assert sorted(o.color for o in after.objects) == sorted(o.color for o in before.objects)
        assert pairs_after != pairs_before
    else:
        changed = [(a, b) for a, b in zip(before.objects, after.objects, strict=True) if a != b]
        assert len(changed) == 1


def test_a_swap_is_impossible_for_one_object() -> None:
    scene = Scene(background="gray", objects=(SceneObject("star", "yellow"),)).to_dict()
    assert perturb(scene, "swap_colors", random.Random(0)) is None
    assert perturb(scene, "swap_places", random.Random(0)) is None
    assert perturb(scene, "recolor", random.Random(0)) is not None


def test_hard_negatives_differ_from_the_positive_only_in_the_changed_words() -> None:
    pos, neg = caption_batch([_two_objects()] * 4, [1, 2, 3, 4], negatives=2, tags_fraction=0.0)
    assert len(neg) == 4 and all(len(row) == 2 for row in neg)
    for p, row in zip(pos, neg, strict=True):
        for n in row:
            assert n != p
            assert len(n.split()) == len(p.split())  # same template, one attribute's words swapped


def test_the_loss_prefers_the_true_caption_over_a_hard_negative() -> None:
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    far = torch.nn.functional.normalize(torch.randn(8, 2, 16), dim=-1)
    assert clip_loss(img, img, far, scale) < clip_loss(img, img, img[:, None].expand(8, 2, 16), scale)
    assert clip_loss(img, img, far, scale) < clip_loss(img, img.roll(1, dims=0), far, scale)


def test_a_short_run_learns_to_match_images_and_captions(tmp_path) -> None:
    from t2i.train.shapes_xl import ShapesXLConfig, build_text_encoders, stage_data, stage_tokenizer

    cfg = ShapesXLConfig.smoke()
    cfg.n_scenes = 48
    images, scenes = stage_data(cfg, tmp_path)
    tok = stage_tokenizer(tmp_path, scenes)
    torch.manual_seed(0)
    te1, te2 = build_text_encoders(cfg, tok)
    settings = ClipSettings(steps=60, batch=16, lr=3e-3, warmup=5, negatives=1, width=8, checkpoint_steps=30)
    before = te2.text_model.embeddings.token_embedding.weight.detach().clone()
    tower = train_clip(settings, te1, te2, tok, images, scenes, tmp_path / "clip.ckpt", 0, 0.0)
    assert not torch.equal(before, te2.text_model.embeddings.token_embedding.weight)
    state = torch.load(tmp_path / "clip.ckpt", weights_only=True)
    assert state["step"] == 60
    first, last = np.mean(state["losses"][:10]), np.mean(state["losses"][-10:])
    assert last < first - 0.3, (first, last)
    figures = clip_accuracy(tower.eval(), te1.eval(), te2.eval(), tok, images, scenes, n=32)
    assert set(figures) == {"retrieval_top1", *PERTURBATIONS}
    assert figures["retrieval_top1"] > 1 / 32  # better than chance on 32 images


def test_the_image_tower_gives_unit_vectors() -> None:
    out = ImageTower(24, width=8)(torch.zeros(3, 3, 64, 64))
    assert out.shape == (3, 24)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
