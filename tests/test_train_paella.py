"""paella-tiny's recipe: the smoke run end to end, and a few hundred steps that clearly lower the losses."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from t2i.backends import default_registry
from t2i.generate import generate
from t2i.paella import Paella, PaellaConfig, VQGANConfig, VQModel
from t2i.paella.checkpoints import read_state_dict
from t2i.paella.text import byte_tokenizer, tiny_byt5_encoder
from t2i.train.paella_tiny import (
    PaellaTinyConfig,
    export_snapshot,
    load_work_vqgan,
    restart_dead_codes,
    stage_vq_decoder,
    token_loss,
    train_paella_tiny,
    vq_loss,
)
from t2i.types import GenerationRequest
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene

from .train_cli import main, usage_error


def test_smoke_run_exports_a_pipeline_that_generates_and_resumes(tmp_path) -> None:
    cfg = PaellaTinyConfig.smoke()
    told: dict[str, tuple[int, int, float]] = {}
    out = train_paella_tiny(cfg, tmp_path / "work", tmp_path / "out", command="t2i train paella-tiny (smoke)",
                            progress=lambda stage, step, total, loss: told.__setitem__(stage, (step, total, loss)))
    assert (out / "RECIPE.json").exists() and (out / "model_index.json").exists()
    # every stage reports its progress to the end; the tokens stage has no loss
    assert {k: v[:2] for k, v in told.items()} == {"vqgan": (3, 3), "tokens": (1, 1), "vqgan-decoder": (2, 2),
                                                   "paella": (cfg.steps, cfg.steps)}
    assert np.isnan(told["tokens"][2]) and np.isfinite(told["paella"][2])
    # the sampling defaults travel with the folder: the start temperature chosen on the development set
    assert default_registry().resolve(str(out)).spec.defaults["options"] == {"temperature": "1.5,0.3"}
    result = generate(GenerationRequest("a red circle", model=str(out), seed=1, steps=2), default_registry())
    assert result.images[0].size == (64, 64)
    # a snapshot of the finished run's last checkpoint is the exported model; `t2i train --snapshot` makes it
    assert main(["train", "paella-tiny", "--snapshot", "--work", str(tmp_path / "work"),
                 "--out", str(tmp_path / "snap")]) == 0
    for part in ("generator", "vqgan"):
        exported, snap = (read_state_dict(d / part / "model.safetensors") for d in (out, tmp_path / "snap"))
        assert exported.keys() == snap.keys() and all(torch.equal(exported[k], snap[k]) for k in exported)
    assert json.loads((tmp_path / "snap" / "RECIPE.json").read_text())["figures"]["snapshot_of_step"] == cfg.steps
    with pytest.raises(ValueError, match="no paella-tiny run"):
        export_snapshot(tmp_path / "nothing", tmp_path / "snap2")
    longer = train_paella_tiny(dataclasses.replace(cfg, steps=6), tmp_path / "work", tmp_path / "out2")
    assert (longer / "model_index.json").exists()
    # the decoder stage ran on the fixed codes, and can go on for more steps
    work = tmp_path / "work"
    assert torch.load(work / "vqgan-decoder.ckpt", weights_only=True)["step"] == cfg.vq_decoder_steps
    train_paella_tiny(dataclasses.replace(cfg, steps=6, vq_decoder_steps=4), work, tmp_path / "out2")
    assert torch.load(work / "vqgan-decoder.ckpt", weights_only=True)["step"] == 4
    assert torch.equal(load_work_vqgan(work).vquantizer.codebook.weight,
                       read_state_dict(work / "vqgan.safetensors")["vquantizer.codebook.weight"])  # same codes
    # the VQGAN's steps are fixed once its codes are learnt: the token model was trained on them
    with pytest.raises(ValueError, match="vq_steps"):
        train_paella_tiny(dataclasses.replace(cfg, steps=6, vq_steps=cfg.vq_steps + 1), tmp_path / "work",
                          tmp_path / "out3")


def _scenes(n: int) -> tuple[torch.Tensor, list[str]]:
    from t2i.world.captions import tags_caption

    rng = random.Random(0)
    scenes = [sample_scene(rng) for _ in range(n)]
    images = np.stack([np.asarray(render_scene(s, 32)) for s in scenes])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, [tags_caption(s) for s in scenes]


def test_a_few_hundred_steps_lower_both_losses_clearly() -> None:
    torch.manual_seed(0)
    x, captions = _scenes(16)
    vq = VQModel(VQGANConfig(levels=2, bottleneck_blocks=1, c_hidden=16, c_latent=4, codebook_size=32))
    opt = torch.optim.AdamW(vq.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    restart_dead_codes(vq, torch.zeros(32), vq.encode_latents(x).detach(), g)
    vq_losses = []
    for _ in range(150):
        loss, _ = vq_loss(vq, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        vq_losses.append(loss.item())
    assert np.mean(vq_losses[-10:]) < 0.5 * np.mean(vq_losses[:10])

    tokens = vq.eval().encode(x).detach()  # (16, 8, 8)
    model = Paella(PaellaConfig(c_in=8, c_out=8, num_labels=32, c_r=8, c_cond=16, c_hidden=(16, 32), nhead=(2, 2),
                                blocks=(1, 1), level_config=("CTA", "CTA"), clip_embd=8, byt5_embd=16, clip_seq_len=1,
                                dropout=0.0))
    text, tok = tiny_byt5_encoder(16, 1, 2, 32), byte_tokenizer()
    params = list(model.parameters()) + list(text.parameters())
    before = model.out_mapper[1].weight.detach().clone()
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for step in range(200):
        g = torch.Generator().manual_seed(step)
        loss = token_loss(model, text, tok, tokens, captions, 32, 0.1, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])
    assert not torch.equal(before, model.out_mapper[1].weight)  # the weights were updated (the reference's bug)


def test_a_token_model_that_cannot_predict_every_code_is_refused(tmp_path):
    cfg = PaellaTinyConfig.smoke()
    cfg.model = {**cfg.model, "num_labels": cfg.vq["codebook_size"] + 1}
    with pytest.raises(ValueError, match="must be equal"):
        train_paella_tiny(cfg, tmp_path / "w", tmp_path / "m")
    assert not (tmp_path / "w").exists()  # refused before anything is written


def test_the_vqgan_decoder_stage_lowers_the_reconstruction_loss(tmp_path) -> None:
    cfg = dataclasses.replace(PaellaTinyConfig.smoke(), vq_decoder_steps=60, vq_decoder_lr=3e-3, warmup=5,
                              vq_batch=8)
    rng = random.Random(1)
    images = np.stack([np.asarray(render_scene(sample_scene(rng), 64)) for _ in range(16)])
    vq = VQModel(VQGANConfig.from_dict(cfg.vq)).eval()
    tokens = vq.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    losses: list[float] = []
    stage_vq_decoder(cfg, tmp_path, vq, tokens, images, progress=lambda s, i, n, loss: losses.append(loss))
    assert len(losses) == 60 and np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert torch.equal(vq.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255), tokens)


def test_a_fresh_recipe_vqgan_starts_its_residual_gates_where_the_config_says(tmp_path) -> None:
    from t2i.paella.vqgan import VQResBlock
    from t2i.train.paella_tiny import new_or_finished_vqgan

    assert PaellaTinyConfig().vq_gate_init == 1.0  # the recipe opens them; 0 is the released init
    released, _ = new_or_finished_vqgan(dataclasses.replace(PaellaTinyConfig.smoke(), vq_gate_init=0.0),
                                        tmp_path / "none.safetensors")
    opened, _ = new_or_finished_vqgan(dataclasses.replace(PaellaTinyConfig.smoke(), vq_gate_init=0.5),
                                      tmp_path / "none.safetensors")
    blocks = [m for m in opened.modules() if isinstance(m, VQResBlock)]
    assert blocks and all(b.gammas.tolist() == [0, 0, 0.5, 0, 0, 0.5] for b in blocks)
    assert all(not m.gammas.any() for m in released.modules() if isinstance(m, VQResBlock))
    # open gates let the convolutions inside the blocks learn from the first step
    x = torch.from_numpy(np.asarray(render_scene(sample_scene(random.Random(0)), 64))).permute(2, 0, 1)[None]
    for vq, moves in ((released, False), (opened, True)):
        vq.zero_grad()
        vq_loss(vq, x.float() / 255)[0].backward()
        assert bool(blocks_grad(vq).abs().sum() > 0) is moves


def blocks_grad(vq: VQModel) -> torch.Tensor:
    from t2i.paella.vqgan import VQResBlock

    return torch.cat([m.depthwise[1].weight.grad.flatten() for m in vq.modules() if isinstance(m, VQResBlock)])


def test_the_gate_and_rate_flags_reach_the_vqgan_and_are_paella_only(tmp_path, capsys) -> None:
    usage_error(["train", "shapes-xl", "--work", str(tmp_path / "x"), "--out", str(tmp_path / "xm"),
                 "--vq-gate-init", "1"])
    assert "unrecognized arguments: --vq-gate-init" in capsys.readouterr().err
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "p"), "--out", str(tmp_path / "pm"),
                 "--vq-gate-init", "nan"]) == 2
    assert "finite" in capsys.readouterr().err
    usage_error(["train", "shapes-xl", "--work", str(tmp_path / "x"), "--out", str(tmp_path / "xm"),
                 "--vq-lr", "1e-3"])
    assert "unrecognized arguments: --vq-lr" in capsys.readouterr().err
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "p"), "--out", str(tmp_path / "pm"),
                 "--vq-gate-init", "0.5", "--vq-lr", "1e-3", "--vq-steps", "2"]) == 0
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["vq_gate_init"] == 0.5 and saved["vq_lr"] == 1e-3 and saved["vq_steps"] == 2
    # a run begun at another VQGAN rate is not resumed under this one
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "p"), "--out", str(tmp_path / "pm"),
                 "--vq-gate-init", "0.5", "--vq-steps", "2"]) != 0
    assert "vq_lr" in capsys.readouterr().err


def test_a_frozen_clip_text_tower_conditions_the_token_model_and_travels_with_the_export(tmp_path, capsys) -> None:
    from t2i.paella.pipeline import PaellaPipeline
    from t2i.paella.sampler import SamplerSettings
    from t2i.paella.text import load_clip_text
    from t2i.registry import package_weights

    assert main(["train", "paella-tiny", "--smoke", "--clip-from", "shapes-xl", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "m")]) == 0
    tower, _ = load_clip_text(package_weights("shapes-xl"))
    saved = json.loads((tmp_path / "w" / "config.json").read_text())
    assert saved["clip_from"] == "shapes-xl"  # the name, not this machine's path to it
    assert saved["model"]["clip_embd"] == tower.config.projection_dim
    pipe = PaellaPipeline.from_pretrained(tmp_path / "m")
    assert pipe.clip_text_encoder is not None
    shipped, exported = tower.state_dict(), pipe.clip_text_encoder.state_dict()
    assert all(torch.equal(shipped[k], exported[k].float()) for k in shipped)  # frozen: trained elsewhere
    kept, _ = load_clip_text(tmp_path / "w" / "clip_text")  # the work folder keeps the tower it trained with
    assert all(torch.equal(shipped[k], v) for k, v in kept.state_dict().items())
    snap = PaellaPipeline.from_pretrained(export_snapshot(tmp_path / "w", tmp_path / "snap"))
    assert all(torch.equal(shipped[k], v.float()) for k, v in snap.clip_text_encoder.state_dict().items())
    # the token model learnt through the CLIP input: its mapper left the seeded init
    torch.manual_seed(PaellaTinyConfig().seed + 1)
    init = Paella(PaellaConfig.from_dict(saved["model"]))
    assert not torch.equal(init.clip_mapper.weight, pipe.model.clip_mapper.weight)
    cond = pipe.condition(["a red circle", "a blue square"])
    assert cond["clip"].shape == (2, tower.config.projection_dim)
    assert (cond["clip"][0] - cond["clip"][1]).abs().max() > 0
    assert pipe("a red circle", seeds=[1], settings=SamplerSettings(steps=2, renoise_steps=1))[0].size == (64, 64)
    # refused: a folder without a tower, a tower of another width, the flag on another recipe
    with pytest.raises(ValueError, match="no CLIP text tower"):
        PaellaTinyConfig.smoke().with_clip(str(tmp_path / "w"))
    with pytest.raises(ValueError, match="neither a folder"):
        PaellaTinyConfig.smoke().with_clip("no-such-model")
    narrow = dataclasses.replace(PaellaTinyConfig.smoke(), clip_from="shapes-xl")
    with pytest.raises(ValueError, match="clip_embd is 8"):
        train_paella_tiny(narrow, tmp_path / "w2", tmp_path / "m2")
    usage_error(["train", "tipo-tiny", "--clip-from", "shapes-xl", "--work", str(tmp_path / "t"),
                 "--out", str(tmp_path / "tm")])
    assert "unrecognized arguments: --clip-from" in capsys.readouterr().err


def test_a_float16_snapshot_stores_every_weight_in_half_and_loads_as_float32(tmp_path, capsys) -> None:
    """--snapshot --float16 (how paella-tiny ships): every part's files hold float16, the folder loads in
    float32 with the weights of the float32 export rounded to half, and its images stay close to the float32
    export's; the flag is refused without --snapshot."""
    from safetensors import safe_open

    from t2i.paella.pipeline import PaellaPipeline
    from t2i.paella.sampler import SamplerSettings

    assert main(["train", "paella-tiny", "--smoke", "--clip-from", "shapes-xl", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "m")]) == 0
    assert main(["train", "paella-tiny", "--snapshot", "--float16", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "half")]) == 0
    for path in (tmp_path / "half").rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == \
                {torch.float16}, path
    full, half = PaellaPipeline.from_pretrained(tmp_path / "m"), PaellaPipeline.from_pretrained(tmp_path / "half")
    for a, b in zip(full.modules(), half.modules(), strict=True):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert w.dtype == v.dtype and torch.equal(w, v.half().to(v.dtype)), k
    recipe = json.loads((tmp_path / "half" / "RECIPE.json").read_text())
    assert recipe["figures"]["stored_as"] == "float16" and recipe["provenance"]["command"].startswith("t2i ")
    settings = SamplerSettings(steps=2, renoise_steps=1)
    pixels = [np.asarray(p("a red circle", seeds=[1], settings=settings)[0], dtype=np.float32) for p in (full, half)]
    assert np.abs(pixels[0] - pixels[1]).mean() < 8  # of 255: the same picture, give or take a few tokens
    assert main(["train", "paella-tiny", "--smoke", "--float16", "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "m2")]) == 2
    assert "give it with --snapshot" in capsys.readouterr().err and not (tmp_path / "w2").exists()


def test_a_run_goes_on_from_an_export_with_its_vqgan_architecture_and_weights(tmp_path, capsys) -> None:
    """--init: the export's VQGAN (its stages skipped), its token model and text encoder as the start, its
    architecture adopted; the step count carries on in the figures; another architecture is refused."""
    from t2i.paella.pipeline import PaellaPipeline

    first = tmp_path / "m1"
    assert main(["train", "paella-tiny", "--smoke", "--clip-from", "shapes-xl", "--work", str(tmp_path / "w1"),
                 "--out", str(first), "--steps", "3"]) == 0
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "m2"), "--steps", "0"]) == 0
    assert not (tmp_path / "w2" / "vqgan.safetensors").exists()  # no VQGAN trained
    a, b = PaellaPipeline.from_pretrained(first), PaellaPipeline.from_pretrained(tmp_path / "m2")
    for part in ("vqgan", "model", "text_encoder"):  # 0 steps: the export's weights, all of them
        theirs, ours = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert theirs.keys() == ours.keys() and all(torch.equal(v, ours[k]) for k, v in theirs.items())
    assert b.clip_text_encoder is not None  # clip_from adopted with the architecture
    recipe = json.loads((tmp_path / "m2" / "RECIPE.json").read_text())
    assert recipe["figures"]["token_steps_total"] == 3 and recipe["config"]["init_from"] == str(first)
    assert main(["train", "paella-tiny", "--smoke", "--init", str(tmp_path / "m2"), "--work", str(tmp_path / "w5"),
                 "--out", str(tmp_path / "m5"), "--steps", "2"]) == 0
    assert json.loads((tmp_path / "m5" / "RECIPE.json").read_text())["figures"]["token_steps_total"] == 5
    # the export replaced in place by the run's own (as checkpoints/ keeps one name): the run's snapshots keep
    # its count, and resuming it from the new weights is refused
    shutil.rmtree(tmp_path / "m2")
    shutil.copytree(tmp_path / "m5", tmp_path / "m2")
    assert main(["train", "paella-tiny", "--snapshot", "--work", str(tmp_path / "w5"),
                 "--out", str(tmp_path / "m6")]) == 0
    assert json.loads((tmp_path / "m6" / "RECIPE.json").read_text())["figures"]["token_steps_total"] == 5
    assert main(["train", "paella-tiny", "--smoke", "--init", str(tmp_path / "m2"), "--work", str(tmp_path / "w5"),
                 "--out", str(tmp_path / "m7"), "--steps", "4"]) == 2
    assert "init_token_steps" in capsys.readouterr().err
    # the codes it learnt are those the export's token model learnt
    tokens = [torch.load(tmp_path / w / "tokens.pt", weights_only=True)["tokens"] for w in ("w1", "w2")]
    assert torch.equal(*tokens)
    # refused: a folder that is no paella-tiny export; an architecture that differs (no clip_from here)
    assert main(["train", "paella-tiny", "--smoke", "--init", str(tmp_path / "w1"), "--work", str(tmp_path / "w3"),
                 "--out", str(tmp_path / "m3")]) == 2
    assert "no RECIPE.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no RECIPE.json"):
        train_paella_tiny(dataclasses.replace(PaellaTinyConfig.smoke(), init_from=str(tmp_path / "w1")),
                          tmp_path / "w3", tmp_path / "m3")
    with pytest.raises(ValueError, match="another configuration.*clip_from"):
        train_paella_tiny(dataclasses.replace(PaellaTinyConfig.smoke(), init_from=str(first)),
                          tmp_path / "w4", tmp_path / "m4")
    assert not (tmp_path / "w4").exists()  # refused before anything is written


def _smoke_export(tmp_path: Path) -> Path:
    """A two-step smoke export in tmp_path/m1 (work folder tmp_path/w1), for runs that go on from it."""
    first = tmp_path / "m1"
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w1"), "--out", str(first),
                 "--steps", "2"]) == 0
    return first


def test_a_run_from_an_export_can_fine_tune_its_decoder_on_the_same_codes(tmp_path, capsys) -> None:
    """--init with --init-decoder-steps: the export's decoder learns on, its encoder, codebook and token model
    stay (the codes the token model learnt are unchanged); the oversampling and rate flags are recorded; a run
    from scratch takes --decoder-steps and one from an export --init-decoder-steps, and the other way round is
    refused."""
    from t2i.paella.pipeline import PaellaPipeline

    first = _smoke_export(tmp_path)
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "m2"), "--steps", "0", "--init-decoder-steps", "3", "--decoder-lr", "1e-3",
                 "--decoder-oversample", "star=4"]) == 0
    saved = json.loads((tmp_path / "w2" / "config.json").read_text())
    assert (saved["init_decoder_steps"], saved["vq_decoder_lr"], saved["vq_decoder_oversample"]) == (3, 1e-3,
                                                                                                    {"star": 4.0})
    a, b = PaellaPipeline.from_pretrained(first), PaellaPipeline.from_pretrained(tmp_path / "m2")
    for part in ("model", "text_encoder"):
        theirs, ours = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert all(torch.equal(v, ours[k]) for k, v in theirs.items())
    theirs, ours = a.vqgan.state_dict(), b.vqgan.state_dict()
    decoder = [k for k in theirs if k.startswith(("up_blocks.", "out_block."))]
    assert decoder and len(decoder) < len(theirs)
    assert all(torch.equal(v, ours[k]) for k, v in theirs.items() if k not in decoder)  # encoder and codebook
    assert any(not torch.equal(theirs[k], ours[k]) for k in decoder)
    snap = load_work_vqgan(tmp_path / "w2").state_dict()  # snapshots carry the fine-tuned decoder
    assert all(torch.equal(v, snap[k]) for k, v in ours.items())
    # without --init-decoder-steps a run from an export keeps the export's decoder, as before
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w3"),
                 "--out", str(tmp_path / "m3"), "--steps", "0"]) == 0
    assert json.loads((tmp_path / "w3" / "config.json").read_text())["init_decoder_steps"] == 0
    # each decoder-steps flag belongs to one kind of run: the other kind refuses it, before anything is written
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w6"),
                 "--out", str(tmp_path / "m6"), "--decoder-steps", "3"]) == 2
    assert "--init-decoder-steps" in capsys.readouterr().err and not (tmp_path / "w6").exists()
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w6"), "--out", str(tmp_path / "m6"),
                 "--init-decoder-steps", "3"]) == 2
    assert "this run has none" in capsys.readouterr().err and not (tmp_path / "w6").exists()
    # refused: an unknown shape, a weight that is no number, the flags on another recipe, no scenes to weigh
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w4"), "--out", str(tmp_path / "m4"),
                 "--decoder-oversample", "blob=2"]) == 2
    assert "unknown shapes" in capsys.readouterr().err
    assert not (tmp_path / "w4").exists()
    usage_error(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w4"), "--out", str(tmp_path / "m4"),
                 "--decoder-oversample", "star=many"])
    assert "W a number" in capsys.readouterr().err
    usage_error(["train", "tipo-tiny", "--work", str(tmp_path / "t"), "--out", str(tmp_path / "tm"),
                 "--decoder-lr", "1e-3", "--decoder-oversample", "star=2"])
    assert "unrecognized arguments: --decoder-lr 1e-3 --decoder-oversample star=2" in capsys.readouterr().err
    cfg = dataclasses.replace(PaellaTinyConfig.smoke(), vq_decoder_oversample={"star": 2.0})
    with pytest.raises(ValueError, match="scene dicts"):
        stage_vq_decoder(cfg, tmp_path, a.vqgan, torch.zeros(1, 16, 16, dtype=torch.long),
                         np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="has no init_from"):
        train_paella_tiny(dataclasses.replace(PaellaTinyConfig.smoke(), init_decoder_steps=2), tmp_path / "w5",
                          tmp_path / "m5")


def test_the_token_stage_draws_oversampled_shapes_more_often(tmp_path) -> None:
    """cfg.oversample weighs the token model's scenes (as shapes-xl's U-Net stage); {} keeps the uniform draws."""
    from t2i.train.paella_tiny import TokenSteps

    rng = random.Random(3)
    scenes = [sample_scene(rng, 1).to_dict() for _ in range(400)]
    stars = torch.tensor([s["objects"][0]["shape"] == "star" for s in scenes])
    cfg = dataclasses.replace(PaellaTinyConfig.smoke(), batch=64, steps=20)

    def star_share(c: PaellaTinyConfig) -> float:
        steps = TokenSteps(c, byte_tokenizer(), scenes, len(scenes), (16, 16))
        return float(torch.cat([stars[steps[i]["idx"]] for i in range(c.steps)]).float().mean())

    uniform, weighted = star_share(cfg), star_share(dataclasses.replace(cfg, oversample={"star": 4.0}))
    base = float(stars.float().mean())
    assert abs(uniform - base) < 0.05 and weighted > uniform + 0.2
    # the uniform draws are those of runs before the option (torch.randint from the same generator)
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 500_000 + 7)
    assert torch.equal(TokenSteps(cfg, byte_tokenizer(), scenes, len(scenes), (16, 16))[7]["idx"],
                       torch.randint(len(scenes), (cfg.batch,), generator=g))
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m"),
                 "--oversample", "star=3"]) == 0
    assert json.loads((tmp_path / "w" / "config.json").read_text())["oversample"] == {"star": 3.0}
    with pytest.raises(ValueError, match="unknown shapes"):
        train_paella_tiny(dataclasses.replace(PaellaTinyConfig.smoke(), oversample={"blob": 2.0}), tmp_path / "w2",
                          tmp_path / "m2")


def test_a_run_from_an_export_can_give_its_decoder_a_refiner(tmp_path, capsys) -> None:
    """--decoder-refine C: the export's VQGAN gains a refiner for the decoder stage; the export carries it,
    its encoder and codebook stay, snapshots load it, and without decoder steps the flag is refused."""
    from t2i.paella.pipeline import PaellaPipeline

    first = _smoke_export(tmp_path)
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w2"),
                 "--out", str(tmp_path / "m2"), "--steps", "0", "--init-decoder-steps", "3", "--decoder-lr", "1e-2",
                 "--decoder-refine", "4"]) == 0
    a, b = PaellaPipeline.from_pretrained(first).vqgan, PaellaPipeline.from_pretrained(tmp_path / "m2").vqgan
    assert a.refiner is None and b.refiner is not None and b.cfg.refine_channels == 4
    theirs, ours = a.state_dict(), b.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in theirs.items() if k.startswith(("down_blocks.", "vquantizer.")))
    assert ours["refiner.conv_out.weight"].abs().sum() > 0  # the refiner learnt
    snap = load_work_vqgan(tmp_path / "w2").state_dict()
    assert snap.keys() == ours.keys() and all(torch.equal(v, snap[k]) for k, v in ours.items())
    # an export with a refiner goes on: its decoder stage trains the refiner further; a second one is refused
    assert main(["train", "paella-tiny", "--smoke", "--init", str(tmp_path / "m2"), "--work", str(tmp_path / "w4"),
                 "--out", str(tmp_path / "m4"), "--steps", "0", "--init-decoder-steps", "2", "--decoder-lr",
                 "1e-2"]) == 0
    again = PaellaPipeline.from_pretrained(tmp_path / "m4").vqgan.state_dict()
    assert again.keys() == ours.keys()
    assert not torch.equal(again["refiner.conv_out.weight"], ours["refiner.conv_out.weight"])
    with pytest.raises(ValueError, match="has a refiner already"):
        train_paella_tiny(dataclasses.replace(PaellaTinyConfig.smoke(), init_from=str(tmp_path / "m2"),
                                              init_decoder_steps=2, vq_decoder_refine=4),
                          tmp_path / "w5", tmp_path / "m5")
    assert not (tmp_path / "w5").exists()  # refused before anything is written
    # refused: a refiner with no decoder steps to train it, and on another recipe
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--work", str(tmp_path / "w3"),
                 "--out", str(tmp_path / "m3"), "--steps", "0", "--decoder-refine", "4"]) == 2
    assert "init_decoder_steps > 0 with init_from" in capsys.readouterr().err
    usage_error(["train", "tipo-tiny", "--work", str(tmp_path / "t"), "--out", str(tmp_path / "tm"),
                 "--decoder-refine", "4"])


def test_a_run_from_scratch_can_give_its_decoder_stage_a_refiner(tmp_path, capsys) -> None:
    """--decoder-refine without --init: stage 1's VQGAN gains the refiner for the decoder stage (stage 1's
    own file stays without one), the export and snapshots carry it; no decoder stage: refused."""
    from t2i.paella.pipeline import PaellaPipeline

    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m"),
                 "--steps", "2", "--decoder-steps", "3", "--decoder-lr", "1e-2", "--decoder-refine", "4"]) == 0
    vq = PaellaPipeline.from_pretrained(tmp_path / "m").vqgan
    assert vq.cfg.refine_channels == 4 and vq.state_dict()["refiner.conv_out.weight"].abs().sum() > 0
    stage1 = read_state_dict(tmp_path / "w" / "vqgan.safetensors")
    assert not any(k.startswith("refiner.") for k in stage1)
    assert all(torch.equal(v, vq.state_dict()[k]) for k, v in stage1.items() if k.startswith("vquantizer."))
    snap = load_work_vqgan(tmp_path / "w").state_dict()
    assert all(torch.equal(v, snap[k]) for k, v in vq.state_dict().items())
    assert main(["train", "paella-tiny", "--smoke", "--work", str(tmp_path / "w2"), "--out", str(tmp_path / "m2"),
                 "--decoder-steps", "0", "--decoder-refine", "4"]) == 2
    assert "needs that stage" in capsys.readouterr().err and not (tmp_path / "w2").exists()


def test_a_run_from_an_export_can_change_the_render_size(tmp_path, capsys) -> None:
    """--size: the run trains on renders of that side (its tokens' grid is size / 4), starts from the export's
    weights unchanged and exports a pipeline whose default images are that size; sizes the VQGAN and token
    model cannot take are refused with the multiple, before anything is written; other recipes refuse it."""
    from t2i.paella.pipeline import PaellaPipeline

    first = _smoke_export(tmp_path)
    assert main(["train", "paella-tiny", "--smoke", "--init", str(first), "--size", "32", "--work",
                 str(tmp_path / "w2"), "--out", str(tmp_path / "m2"), "--steps", "0"]) == 0
    tokens = torch.load(tmp_path / "w2" / "tokens.pt", weights_only=True)["tokens"]
    assert tokens.shape[1:] == (8, 8)  # 32 px / the VQGAN's factor 4
    a, b = PaellaPipeline.from_pretrained(first), PaellaPipeline.from_pretrained(tmp_path / "m2")
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    index = json.loads((tmp_path / "m2" / "model_index.json").read_text())
    assert (index["defaults"]["width"], index["defaults"]["height"]) == (32, 32)
    assert json.loads((tmp_path / "m2" / "RECIPE.json").read_text())["config"]["size"] == 32
    result = generate(GenerationRequest("a red circle", model=str(tmp_path / "m2"), seed=0, steps=2),
                      default_registry())
    assert result.images[0].size == (32, 32)  # the model's default size
    assert main(["train", "paella-tiny", "--smoke", "--size", "24", "--work", str(tmp_path / "w3"),
                 "--out", str(tmp_path / "m3")]) == 2
    assert "positive multiple of 16" in capsys.readouterr().err and not (tmp_path / "w3").exists()
    usage_error(["train", "tipo-tiny", "--smoke", "--size", "32", "--work", str(tmp_path / "w4"),
                 "--out", str(tmp_path / "m4")])
    assert "unrecognized arguments: --size" in capsys.readouterr().err
