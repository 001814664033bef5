"""Oversampling scenes by shape (shapes-xl's `oversample` setting)."""

import pytest

torch = pytest.importorskip("torch")

from t2i.train.world_data import sample_scenes, scene_weights  # noqa: E402


def scene(*shapes: str) -> dict:
    return {"objects": [{"shape": s} for s in shapes]}


def test_scenes_holding_an_oversampled_shape_get_its_weight():
    scenes = [scene("star"), scene("circle"), scene("circle", "star"), scene("square", "triangle")]
    w = scene_weights(scenes, {"star": 3.0, "square": 2.0})
    assert w.tolist() == [3.0, 1.0, 3.0, 2.0]


def test_no_oversampling_keeps_uniform_sampling_unchanged():
    assert scene_weights([scene("star")], {}) is None
    a = sample_scenes(10, 64, torch.Generator().manual_seed(5), None)
    b = torch.randint(10, (64,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)  # runs begun before the setting draw the same batches


def test_weighted_sampling_follows_the_weights_and_is_seeded():
    w = torch.tensor([1.0, 3.0], dtype=torch.float64)
    a = sample_scenes(2, 4000, torch.Generator().manual_seed(0), w)
    assert torch.equal(a, sample_scenes(2, 4000, torch.Generator().manual_seed(0), w))
    assert 0.72 < a.float().mean().item() < 0.78  # share of index 1: 3/4


@pytest.mark.parametrize("bad, match", [({"hexagon": 2.0}, "unknown shapes"), ({"star": 0.0}, "finite and > 0"),
                                        ({"star": float("inf")}, "finite and > 0")])
def test_bad_oversampling_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        scene_weights([scene("star")], bad)


def test_the_command_line_refuses_oversampling_elsewhere_and_bad_weights(tmp_path, capsys):
    from .train_cli import main, usage_error

    usage_error(["train", "tipo-tiny", "--work", str(tmp_path), "--out", str(tmp_path / "m"),
                 "--oversample", "star=2"])
    assert "unrecognized arguments: --oversample" in capsys.readouterr().err
    for bad in ("star=many", "star", "=2", "star=inf"):
        usage_error(["train", "shapes-xl", "--smoke", "--work", str(tmp_path), "--out", str(tmp_path / "m"),
                     "--oversample", bad])
        assert "expected SHAPE=W with W a number" in capsys.readouterr().err
    assert main(["train", "shapes-xl", "--smoke", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m"),
                 "--oversample", "blob=2"]) == 2
    assert "unknown shapes" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_the_unet_learning_rate_flag_is_for_shapes_xl_and_must_be_a_rate(tmp_path, capsys):
    from .train_cli import main, usage_error

    usage_error(["train", "tipo-tiny", "--work", str(tmp_path), "--out", str(tmp_path / "m"),
                 "--unet-lr", "1e-4"])
    assert "unrecognized arguments: --unet-lr" in capsys.readouterr().err
    for bad in ("0", "-1e-4", "nan", "3"):
        assert main(["train", "shapes-xl", "--work", str(tmp_path), "--out", str(tmp_path / "m"),
                     f"--unet-lr={bad}"]) == 2
        assert "--unet-lr must be between 0 and 1" in capsys.readouterr().err


def test_distinct_pairs_get_the_pair_weight_times_the_shape_weight():
    scenes = [scene("star", "circle"), scene("star", "star"), scene("square", "circle", "star"), scene("circle")]
    assert scene_weights(scenes, {}, pair_weight=3.0).tolist() == [3.0, 1.0, 1.0, 1.0]
    assert scene_weights(scenes, {"star": 2.0}, pair_weight=3.0).tolist() == [6.0, 2.0, 2.0, 1.0]
    assert scene_weights(scenes, {}, pair_weight=1.0) is None  # as runs before the setting
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="pair_weight"):
            scene_weights(scenes, {}, pair_weight=bad)


def test_the_pair_weight_flag_reaches_the_shapes_xl_run_and_nothing_else(tmp_path, capsys):
    import json

    from .train_cli import main, usage_error

    usage_error(["train", "distill", "--smoke", "--work", str(tmp_path / "d"), "--out", str(tmp_path / "dm"),
                 "--pair-weight", "2"])
    assert "unrecognized arguments: --pair-weight" in capsys.readouterr().err
    assert main(["train", "shapes-xl", "--smoke", "--work", str(tmp_path / "x"), "--out", str(tmp_path / "xm"),
                 "--pair-weight", "2.5"]) == 0
    assert json.loads((tmp_path / "x" / "config.json").read_text())["pair_weight"] == 2.5
