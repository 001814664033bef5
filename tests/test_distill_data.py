"""Distillation on the user's own captioned images (t2i.distill.data), the device choice and gradient
checkpointing: what a hub teacher on a GPU needs, checked here on a tiny teacher on the CPU."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from t2i.backends import default_registry
from t2i.distill.data import DataError, load_square, read_image_folder
from t2i.distill.features import feature_layers
from t2i.distill.loss import distill_loss
from t2i.distill.recipe import MIX_DEFAULTS, DistillConfig, load_teacher, train_distill
from t2i.train.checkpoint import load_checkpoint
from t2i.train.device import resolve_device
from t2i.unet.student import build_student, koala_recipe

from .tiny_sdxl import build_tiny_sdxl

SMOKE = DistillConfig(steps=3, batch=2, warmup=1, checkpoint_seconds=1e9)
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("teacher"))


def _folder(root: Path, sidecars: bool = True, size: tuple[int, int] = (80, 60)) -> Path:
    """Three flat images; captions as .txt files beside them or in metadata.jsonl."""
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    rows = []
    for k, (name, rgb) in enumerate(COLOURS.items()):
        rel = Path("sub" if k == 2 else ".") / f"{name}.png"
        Image.new("RGB", size, rgb).save(root / rel)
        caption = f"a {name} square"
        if sidecars:
            (root / rel).with_suffix(".txt").write_text(caption + "\n")
        rows.append({"file_name": rel.as_posix(), "text": caption})
    if not sidecars:
        (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_captions_from_sidecar_files_or_metadata(tmp_path) -> None:
    for sidecars in (True, False):
        data = read_image_folder(_folder(tmp_path / str(sidecars), sidecars))
        assert [f.as_posix() for f in data.files] == ["blue.png", "red.png", "sub/green.png"]
        assert data.captions == ("a blue square", "a red square", "a green square")


def test_a_changed_caption_changes_the_fingerprint(tmp_path) -> None:
    root = _folder(tmp_path / "d")
    before = read_image_folder(root).fingerprint()
    assert read_image_folder(root).fingerprint() == before
    (root / "red.txt").write_text("a crimson square")
    assert read_image_folder(root).fingerprint() != before


def test_folders_that_cannot_be_trained_on_are_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        read_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path / "empty")
    root = _folder(tmp_path / "d")
    (root / "blue.txt").unlink()
    with pytest.raises(DataError, match="1 of 3 images .* no caption.*blue.png"):
        read_image_folder(root)
    meta = _folder(tmp_path / "m", sidecars=False)
    (meta / "metadata.jsonl").write_text('{"file_name": "red.png"}\n')
    with pytest.raises(DataError, match="file_name and text"):
        read_image_folder(meta)
    (meta / "metadata.jsonl").write_text('{"file_name": "../red.png", "text": "x"}\n')
    with pytest.raises(DataError, match="inside"):
        read_image_folder(meta)
    (meta / "metadata.jsonl").write_text('{"file_name": "gone.png", "text": "x"}\n')
    with pytest.raises(DataError, match="not a file"):
        read_image_folder(meta)
    (root / "blue.txt").write_text("a blue square")
    (root / "broken.png").write_bytes(b"not a png")
    (root / "broken.txt").write_text("a broken image")
    with pytest.raises(DataError, match="cannot read"):
        load_square(root / "broken.png", 32)


def test_images_are_centre_cropped_to_a_square(tmp_path) -> None:
    im = Image.new("RGB", (90, 30), (0, 0, 255))
    im.paste((255, 0, 0), (30, 0, 60, 30))  # red middle third: the centre square
    im.save(tmp_path / "wide.png")
    out = load_square(tmp_path / "wide.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[..., 0].min() > 200 and out[..., 2].max() < 60  # only the red centre is left
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_square(tmp_path / "clear.png", 8).min() == 255  # transparent over white


def test_a_run_on_a_data_folder_uses_its_images_and_captions(teacher_folder, tmp_path) -> None:
    root = _folder(tmp_path / "d")
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), data=str(root))
    out = train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    assert (out / "unet" / "config.json").is_file()
    config = json.loads((out / "RECIPE.json").read_text())["config"]
    assert config["data"] == str(root) and config["size"] == 64  # the teacher's width
    state = load_checkpoint(tmp_path / "work" / "latents.pt")
    assert state["latents"].shape == (3, 4, 16, 16) and state["fingerprint"] == read_image_folder(root).fingerprint()
    assert not (tmp_path / "work" / "data").exists()  # no shapes world written
    # other images under the same work folder are refused, not trained on with stale latents
    (root / "red.txt").write_text("a crimson square")
    with pytest.raises(ValueError, match="other images"):
        train_distill(dataclasses.replace(cfg, steps=4), tmp_path / "work", tmp_path / "out2", default_registry())


def test_a_size_the_teacher_cannot_take_is_refused_before_the_work_folder_is_claimed(teacher_folder,
                                                                                      tmp_path) -> None:
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), size=36)
    with pytest.raises(ValueError, match="multiple of 16"):
        train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    assert not (tmp_path / "work" / "config.json").exists()
    with pytest.raises(ValueError, match="batch"):
        train_distill(dataclasses.replace(SMOKE, teacher=str(teacher_folder), batch=0), tmp_path / "w2",
                      tmp_path / "o2", default_registry())


def test_the_device_is_cpu_here_and_a_missing_gpu_is_an_error() -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("abacus")


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(teacher_folder) -> None:
    pipe = load_teacher(str(teacher_folder), default_registry())
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), size=64, **MIX_DEFAULTS)
    x0 = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    grads, losses = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        student, _ = build_student(pipe.unet, koala_recipe("koala-700m", pipe.unet.config))
        student.train()
        if checkpointing:
            student.enable_gradient_checkpointing()
        pairs = feature_layers(student, pipe.unet)
        loss, parts = distill_loss(cfg, pipe, student, pairs, x0, ["a red circle", "two blue squares"],
                                   torch.Generator().manual_seed(3))
        loss.backward()
        assert parts["feature"] >= 0
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].shape == grads[1].shape and torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_the_command_line_takes_a_data_folder(teacher_folder, tmp_path) -> None:
    from .train_cli import main, usage_error

    root = _folder(tmp_path / "d")
    out = tmp_path / "out"
    assert main(["train", "distill", "--smoke", "--teacher", str(teacher_folder), "--data", str(root),
                 "--size", "32", "--batch", "2", "--lr", "1e-4", "--device", "cpu", "--gradient-checkpointing",
                 "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    config = json.loads((out / "RECIPE.json").read_text())["config"]
    assert (config["data"], config["size"], config["batch"], config["lr"]) == (str(root), 32, 2, 1e-4)
    assert config["device"] == "cpu" and config["gradient_checkpointing"] is True
    usage_error(["train", "shapes-xl", "--smoke", "--data", str(root), "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "o2")])  # a distill flag on another recipe


def test_a_bfloat16_teacher_feeds_a_float32_student(teacher_folder) -> None:
    """The dtypes of the CUDA path (teacher U-Net and text encoders in bfloat16, student float32), on the CPU."""
    pipe = load_teacher(str(teacher_folder), default_registry())
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), size=64, **MIX_DEFAULTS)
    torch.manual_seed(0)
    student, _ = build_student(pipe.unet, koala_recipe("koala-700m", pipe.unet.config))
    pairs = feature_layers(student, pipe.unet)
    x0 = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    prompts = ["a red circle", "two blue squares"]
    full, _ = distill_loss(cfg, pipe, student, pairs, x0, prompts, torch.Generator().manual_seed(3))
    for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        module.to(dtype=torch.bfloat16)
    half, parts = distill_loss(cfg, pipe, student, pairs, x0, prompts, torch.Generator().manual_seed(3))
    half.backward()
    assert half.dtype == torch.float32 and torch.isfinite(half)
    assert half.item() == pytest.approx(full.item(), rel=0.05)
    assert all(p.dtype == torch.float32 for p in student.parameters()) and student.conv_in.weight.grad is not None
