"""The distillation recipe on a tiny SDXL teacher: the smoke run exports a working pipeline; steps lower
the loss; feature distillation uses the matched layers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i.backends import default_registry
from t2i.distill.features import feature_layers
from t2i.distill.loss import distill_loss
from t2i.distill.recipe import (
    MIX_DEFAULTS,
    DistillConfig,
    load_teacher,
    teacher_mix,
    train_distill,
    with_teacher_mix,
)
from t2i.generate import generate
from t2i.registry import DEFAULTS_FILE
from t2i.train.checkpoint import load_checkpoint
from t2i.types import GenerationRequest
from t2i.unet.student import build_student, koala_recipe

from .tiny_sdxl import build_tiny_sdxl

SMOKE = DistillConfig(n_scenes=16, steps=3, batch=4, warmup=1, checkpoint_seconds=1e9)
MIXED = dataclasses.replace(SMOKE, **MIX_DEFAULTS)  # the batch mix resolved, for distill_loss called directly


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("teacher"))  # shapes-xl's schedule: v at zero terminal SNR


@pytest.fixture(scope="module")
def epsilon_teacher_folder(tmp_path_factory):  # SDXL's own schedule, as hub teachers have
    return build_tiny_sdxl(tmp_path_factory.mktemp("eps-teacher"), prediction_type="epsilon",
                           zero_terminal_snr=False)


def test_smoke_run_exports_a_student_pipeline_that_generates(teacher_folder, tmp_path) -> None:
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder))
    out = train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    # the student samples as its teacher does: its folder carries the teacher's defaults (64x64 here)
    assert (out / DEFAULTS_FILE).read_text() and \
        json.loads((out / DEFAULTS_FILE).read_text()) == json.loads((teacher_folder / DEFAULTS_FILE).read_text())
    result = generate(GenerationRequest("a red circle", model=str(out), seed=1, steps=2), default_registry())
    assert result.images[0].size == (64, 64)
    recipe = (out / "RECIPE.json").read_text()
    assert '"fresh": 0' in recipe and "attn1" in recipe
    assert not [f for f in out.rglob("*.json") if "_name_or_path" in f.read_text()]  # no path of this machine
    from diffusers import UNet2DConditionModel

    assert UNet2DConditionModel.from_pretrained(out / "unet").mid_block is None  # koala-700m: no mid block


@pytest.mark.parametrize("teacher", ["epsilon_teacher_folder", "teacher_folder"])
def test_steps_lower_the_loss_and_every_part_counts(teacher, request) -> None:
    teacher_folder = request.getfixturevalue(teacher)
    pipe = load_teacher(str(teacher_folder), default_registry())
    torch.manual_seed(0)
    student, _ = build_student(pipe.unet, koala_recipe("koala-700m", pipe.unet.config))
    for p in student.parameters():  # start away from the teacher, so there is something to learn
        p.data.add_(torch.randn_like(p) * 0.05)
    pairs = feature_layers(student, pipe.unet)
    cfg = dataclasses.replace(MIXED, teacher=str(teacher_folder))
    x0 = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    prompts = ["a red circle", "two blue squares", "a green star", "a red circle above a blue square"]
    opt = torch.optim.AdamW(student.parameters(), lr=2e-3)
    losses, parts = [], {}
    for step in range(60):
        loss, parts = distill_loss(cfg, pipe, student, pairs, x0, prompts, torch.Generator().manual_seed(step % 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the v target holds a part the random teacher cannot explain (x0), so it falls less far
    bound = 0.7 if pipe.scheduler.config.prediction_type == "epsilon" else 0.85
    assert np.mean(losses[-8:]) < bound * np.mean(losses[:8])
    assert set(parts) == {"task", "output", "feature"} and parts["feature"] > 0
    assert all(not p.requires_grad for p in pipe.unet.parameters())  # the teacher stays frozen


def test_a_teacher_must_be_an_sdxl_model() -> None:
    with pytest.raises(ValueError, match="must be an SDXL-family model"):
        load_teacher("tipo-tiny", default_registry())


def test_the_export_holds_the_ema_of_the_students_weights(teacher_folder, tmp_path) -> None:
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), ema_decay=0.5, lr=1e-2)
    out = train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    state = load_checkpoint(tmp_path / "work" / "student.ckpt")
    from diffusers import UNet2DConditionModel

    exported = UNet2DConditionModel.from_pretrained(out / "unet").state_dict()
    names = list(state["student"])  # parameters first, in the order of student.parameters()
    shadow = dict(zip(names, state["ema"]["shadow"], strict=False))
    moved = [n for n in shadow if not torch.equal(shadow[n], state["student"][n])]
    assert moved, "the EMA should lag the last weights after a few steps at lr 1e-2"
    for n in moved[:20]:
        assert torch.allclose(exported[n].float(), shadow[n], atol=2e-3, rtol=1e-2)


def test_dropped_conditioning_makes_the_batch_independent_of_its_prompts(teacher_folder) -> None:
    pipe = load_teacher(str(teacher_folder), default_registry())
    torch.manual_seed(0)
    student, _ = build_student(pipe.unet, koala_recipe("koala-700m", pipe.unet.config))
    pairs = feature_layers(student, pipe.unet)
    x0 = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    losses = []
    for cond_dropout in (1.0, 0.0):
        cfg = dataclasses.replace(MIXED, teacher=str(teacher_folder), cond_dropout=cond_dropout)
        a, _ = distill_loss(cfg, pipe, student, pairs, x0, ["a red circle", "two blue squares"],
                            torch.Generator().manual_seed(3))
        b, _ = distill_loss(cfg, pipe, student, pairs, x0, ["a yellow star", "a green triangle"],
                            torch.Generator().manual_seed(3))
        losses.append((a.item(), b.item()))
    assert losses[0][0] == pytest.approx(losses[0][1], rel=1e-6)  # all text zeroed: the unconditional branch
    assert losses[1][0] != pytest.approx(losses[1][1], rel=1e-6)  # kept: the prompts matter


def test_bad_shares_are_refused(teacher_folder, tmp_path) -> None:
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder), cond_dropout=1.5)
    with pytest.raises(ValueError, match="shares"):
        train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())


def test_the_batch_mix_follows_the_teachers_recipe_unless_set(teacher_folder, tmp_path) -> None:
    # shapes-xl v8 was trained with 40% colourless captions; a student must see the same prompts
    folder = Path(shutil.copytree(teacher_folder, tmp_path / "teacher"))
    (folder / "RECIPE.json").write_text(json.dumps({"config": {"uncolored_fraction": 0.4, "cond_dropout": 0.2}}))
    assert teacher_mix(folder) == {**MIX_DEFAULTS, "uncolored_fraction": 0.4, "cond_dropout": 0.2}
    assert teacher_mix(tmp_path / "no-recipe") == MIX_DEFAULTS  # a hub SDXL records none
    registry = default_registry()
    recorded = with_teacher_mix(dataclasses.replace(SMOKE, teacher=str(folder)), registry)
    assert recorded.uncolored_fraction == 0.4 and recorded.tags_fraction == MIX_DEFAULTS["tags_fraction"]
    chosen = with_teacher_mix(dataclasses.replace(SMOKE, teacher=str(folder), uncolored_fraction=0.0), registry)
    assert chosen.uncolored_fraction == 0.0 and chosen.cond_dropout == 0.2  # a setting given wins
    with pytest.raises(ValueError, match="with_teacher_mix"):
        distill_loss(SMOKE, None, None, [], torch.zeros(1, 4, 8, 8), ["a star"], torch.Generator())
    # the run records the resolved mix in its work folder
    train_distill(dataclasses.replace(SMOKE, teacher=str(teacher_folder)), tmp_path / "work", tmp_path / "out",
                  registry)
    saved = json.loads((tmp_path / "work" / "config.json").read_text())
    assert {k: saved[k] for k in MIX_DEFAULTS} == teacher_mix(teacher_folder)


def test_the_command_line_runs_the_recipe(teacher_folder, tmp_path, capsys) -> None:
    from .train_cli import main

    out = tmp_path / "out"
    assert main(["train", "distill", "--smoke", "--teacher", str(teacher_folder), "--features", "none",
                 "--uncolored", "0.3", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    recipe = json.loads((out / "RECIPE.json").read_text())
    assert recipe["config"]["features"] == "none" and recipe["config"]["uncolored_fraction"] == 0.3
    assert str(out) in capsys.readouterr().out


def test_the_shipped_shapes_koala_is_a_koala_700m_student_of_shapes_xl() -> None:
    from diffusers import UNet2DConditionModel

    from t2i.registry import package_weights

    registry = default_registry()
    koala, teacher = registry.resolve("shapes-koala"), registry.resolve("shapes-xl")
    assert koala.location == package_weights("shapes-koala")
    # it samples as its teacher (64x64, guidance 2); only the teacher declares a composer (its measured default)
    assert koala.spec.defaults == {k: v for k, v in teacher.spec.defaults.items() if k != "compose"}
    student = UNet2DConditionModel.from_pretrained(koala.location / "unet")
    big = UNet2DConditionModel.from_pretrained(teacher.location / "unet")
    assert student.mid_block is None and student.config.layers_per_block == 1
    assert sum(p.numel() for p in student.parameters()) < 0.5 * sum(p.numel() for p in big.parameters())
    recipe = json.loads((koala.location / "RECIPE.json").read_text())
    assert recipe["config"]["teacher"] == "shapes-xl" and recipe["config"]["uncolored_fraction"] == 0.4
    result = generate(GenerationRequest("a red circle", model="shapes-koala", seed=0, steps=2), registry)
    assert result.images[0].size == (64, 64)


def test_the_relative_feature_loss_weighs_every_layer_alike_whatever_its_scale() -> None:
    from t2i.distill.loss import layer_feature_loss

    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 16, 8, generator=g)
    s = t + 0.1 * torch.randn(2, 16, 8, generator=g)
    small, large = layer_feature_loss(s * 0.01, t * 0.01, "relative"), layer_feature_loss(s * 10, t * 10, "relative")
    assert small.item() == pytest.approx(large.item(), rel=1e-4) and 0.005 < small.item() < 0.02
    plain_small, plain_large = layer_feature_loss(s * 0.01, t * 0.01), layer_feature_loss(s * 10, t * 10)
    assert plain_large.item() == pytest.approx(1e6 * plain_small.item(), rel=1e-3)  # plain MSE grows with scale
    with pytest.raises(ValueError, match="feature_loss"):
        layer_feature_loss(s, t, "cosine")


def test_the_command_line_sets_the_feature_loss(teacher_folder, tmp_path) -> None:
    from .train_cli import main, usage_error

    out = tmp_path / "out"
    assert main(["train", "distill", "--smoke", "--teacher", str(teacher_folder), "--feature-loss", "relative",
                 "--w-feature", "5", "--feature-pairs", "stage", "--work", str(tmp_path / "work"),
                 "--out", str(out)]) == 0
    recipe = json.loads((out / "RECIPE.json").read_text())
    config = recipe["config"]
    assert config["feature_loss"] == "relative" and config["w_feature"] == 5.0
    assert config["feature_pairing"] == "stage"
    stages = [s.split(".attentions")[0] for s, _ in recipe["feature_layers"]]
    assert len(stages) == len(set(stages))  # one pair per stage
    usage_error(["train", "shapes-xl", "--smoke", "--feature-loss", "relative", "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "o2")])  # a distill flag on another recipe


def test_a_work_folder_from_before_student_init_was_removed_goes_on_only_from_the_teacher(teacher_folder,
                                                                                         tmp_path) -> None:
    """`student_init` went (docs/research/removed-options.md): a run that recorded "teacher" goes on, one that
    started its student from random weights is refused with a line naming the removal."""
    cfg = dataclasses.replace(SMOKE, teacher=str(teacher_folder))
    train_distill(cfg, tmp_path / "work", tmp_path / "out", default_registry())
    saved = tmp_path / "work" / "config.json"
    config = json.loads(saved.read_text())
    assert "student_init" not in config
    saved.write_text(json.dumps({**config, "student_init": "teacher"}))
    train_distill(dataclasses.replace(cfg, steps=4), tmp_path / "work", tmp_path / "out", default_registry())
    assert load_checkpoint(tmp_path / "work" / "student.ckpt")["step"] == 4
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "student_init": "random"}))
    with pytest.raises(ValueError, match="student_init='random', but a student from random weights .* was removed"):
        train_distill(dataclasses.replace(cfg, steps=5), tmp_path / "work", tmp_path / "out", default_registry())
