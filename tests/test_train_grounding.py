"""Where each caption noun's objects are, to read cross-attention against (`t2i.train.grounding`)."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from t2i.train.grounding import grounded_pairs, noun_masks, token_targets  # noqa: E402
from t2i.world.scene import Scene, SceneObject  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "t2i" / "weights" / "shapes-xl"


def two_objects() -> dict:
    return Scene("white", (SceneObject("circle", "red", "on the left", area="a large square area"),
                           SceneObject("star", "blue", "on the right"))).to_dict()


def test_a_noun_mask_covers_its_objects_and_nothing_else():
    masks = noun_masks(two_objects(), 16)
    assert set(masks) == {"circle", "star"}
    circle, star = masks["circle"], masks["star"]
    assert circle.shape == (16, 16) and 0 <= circle.min() and circle.max() <= 1
    assert circle[:, :8].sum() > 0.9 * circle.sum()  # on the left
    assert star[:, 8:].sum() > 0.9 * star.sum()  # on the right
    assert circle.sum() > 2 * star.sum()  # large against small
    assert (circle * star).sum() == 0


def test_each_shape_noun_of_a_caption_gets_its_mask_and_other_tokens_none():
    from t2i.train.tokenizer import load_tokenizer

    tok = load_tokenizer(WEIGHTS / "tokenizer")
    scene = two_objects()
    prompts = ["a red circle and a blue star", "two circles", "a photo of a triangle"]
    masks, grounded = token_targets(tok, prompts, [scene] * 3, 16, 77)
    assert masks.shape == (3, 77, 16, 16) and grounded.shape == (3, 77)
    # "<start> a red circle and a blue star": circle at 3, star at 7
    assert grounded[0].nonzero().flatten().tolist() == [3, 7]
    assert torch.equal(masks[0, 3], torch.from_numpy(noun_masks(scene, 16)["circle"]))
    assert grounded[1].nonzero().flatten().tolist() == [2]  # the plural names the circle too
    assert not grounded[2].any()  # the scene holds no triangle: nothing to ground
    with pytest.raises(ValueError, match="2 prompts for 1 scenes"):
        token_targets(tok, prompts[:2], [scene], 16, 77)


def attention_on(mask: torch.Tensor, length: int = 5, token: int = 2) -> torch.Tensor:
    """(1, N, L) maps: positions inside `mask` (side n) attend to token `token` alone, the others to the rest."""
    n = mask.numel()
    a = torch.full((1, n, length), 1.0 / (length - 1))
    a[0, :, token] = 0.0
    inside = mask.flatten() > 0
    a[0, inside] = 0.0
    a[0, inside, token] = 1.0
    return a


def test_grounded_pairs_give_each_grounded_token_its_attention_and_its_pooled_mask():
    mask = torch.zeros(16, 16)
    mask[4:8, 4:8] = 1
    masks = torch.zeros(1, 5, 16, 16)
    masks[0, 2] = mask
    grounded = torch.zeros(1, 5, dtype=torch.bool)
    grounded[0, 2] = True
    focused = attention_on(mask)
    att, m = grounded_pairs(focused, masks, grounded.flatten())
    assert att.shape == m.shape == (1, 256) and torch.equal(m[0], mask.flatten())
    assert ((att * m).sum(1) / att.sum(1)).item() == 1.0  # all of the noun's attention inside its object
    spread = torch.full((1, 256, 5), 0.2)
    att, m = grounded_pairs(spread, masks, grounded.flatten())
    assert ((att * m).sum(1) / att.sum(1)).item() == pytest.approx(mask.mean().item())  # spread evenly: its area
    # an 8x8 map reads the same mask area-pooled
    coarse = attention_on(torch.nn.functional.avg_pool2d(mask[None, None], 2)[0, 0])
    att, m = grounded_pairs(coarse, masks, grounded.flatten())
    assert m.shape == (1, 64) and ((att * m).sum(1) / att.sum(1)).item() == 1.0
    with pytest.raises(ValueError, match="does not match"):
        grounded_pairs(torch.zeros(1, 60, 5), masks, grounded.flatten())
