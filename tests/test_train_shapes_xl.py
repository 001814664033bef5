import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from t2i.train.shapes_xl import (  # noqa: E402
    ShapesXLConfig,
    build_vae,
    export_snapshot,
    stage_data,
    stage_latents,
    stage_tokenizer,
    stage_unet,
    stage_vae,
    train_shapes_xl,
)
from t2i.train.tokenizer import _bpe, load_tokenizer, word_merges, write_word_tokenizer  # noqa: E402


def test_every_known_word_is_one_token(tmp_path):
    words = ["above", "bottom", "orange", "an", "and", "triangle", "triangles", "skyblue", "over", "centre"]
    ranks = {m: i for i, m in enumerate(word_merges(words))}
    assert all(len(_bpe(w, ranks)) == 1 for w in words)
    tok = load_tokenizer(write_word_tokenizer(words, tmp_path))
    assert tok.tokenize("Orange triangles above") == ["orange</w>", "triangles</w>", "above</w>"]
    assert tok.model_max_length == 77
    assert tok.tokenize("zebra") == ["z", "e", "b", "r", "a</w>"]  # unknown words fall back to letters


def test_smoke_run_exports_a_loadable_pipeline(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    out = train_shapes_xl(ShapesXLConfig.smoke(), tmp_path / "work", tmp_path / "model")
    pipe = StableDiffusionXLPipeline.from_pretrained(out, dtype=torch.float32, local_files_only=True)
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert "CrossAttnDownBlock2D" == pipe.unet.config.down_block_types[0]  # cross-attention at the top level
    assert pipe.tokenizer.model_max_length == 77 and (out / "RECIPE.json").exists()
    assert not [f for f in out.rglob("*.json") if "_name_or_path" in f.read_text()]  # no load paths
    from t2i.registry import ModelRegistry

    # the folder carries its own sampling defaults: the size it was trained at, not SDXL's 1024
    assert ModelRegistry().resolve(str(out)).spec.defaults == {"steps": 25, "guidance": 2.0, "width": 64, "height": 64,
                                                        "sampler": "euler", "negative_prompt": "",
                                                        "options": {"empty_negative": 0.24}}
    assert pipe.unet.dtype == torch.float32  # shipped float16, loaded as float32 on CPU
    # a snapshot of the finished run's last checkpoint is the exported model (EMA weights, decoder-stage VAE)
    snap = StableDiffusionXLPipeline.from_pretrained(export_snapshot(tmp_path / "work", tmp_path / "snap"),
                                                     dtype=torch.float32, local_files_only=True)
    for name in ("unet", "vae", "text_encoder_2"):
        for (k, a), b in zip(getattr(pipe, name).state_dict().items(),
                             getattr(snap, name).state_dict().values(), strict=True):
            assert torch.equal(a, b), (name, k)
    assert snap.scheduler.config.prediction_type == "v_prediction"
    # a run saved before the target was a setting was epsilon on the plain schedule
    config = json.loads((tmp_path / "work" / "config.json").read_text())
    for key in ("prediction_type", "zero_terminal_snr"):
        del config[key]
    (tmp_path / "work" / "config.json").write_text(json.dumps(config))
    old = export_snapshot(tmp_path / "work", tmp_path / "old")
    assert json.loads((old / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "epsilon"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    cfg = ShapesXLConfig.smoke()
    images, scenes = stage_data(cfg, work)
    tokenizer = stage_tokenizer(work, scenes)
    vae = stage_vae(cfg, work, images)
    latents = stage_latents(work, vae, images)
    return cfg, tokenizer, latents, scenes


def test_training_lowers_the_loss(tmp_path, prepared):
    cfg, tokenizer, latents, scenes = prepared
    cfg = ShapesXLConfig(**{**cfg.__dict__, "unet_steps": 60, "unet_lr": 2e-3, "warmup": 5})
    losses = []
    stage_unet(cfg, tmp_path, tokenizer, latents, scenes, progress=lambda s, i, n, loss: losses.append(loss))
    raw = torch.load(tmp_path / "unet.ckpt", weights_only=True)["losses"]
    assert len(raw) == 60
    assert np.mean(raw[-15:]) < 0.8 * np.mean(raw[:15])


def test_oversampling_changes_the_batches_and_resumes_exactly(tmp_path, prepared):
    cfg, tokenizer, latents, scenes = prepared
    weighted = ShapesXLConfig(**{**cfg.__dict__, "unet_steps": 4, "checkpoint_steps": 2, "oversample": {"star": 4.0}})
    a = stage_unet(weighted, tmp_path / "a", tokenizer, latents, scenes)
    assert stage_unet(weighted, tmp_path / "b", tokenizer, latents, scenes, stop=lambda step: step == 3) is None
    b = stage_unet(weighted, tmp_path / "b", tokenizer, latents, scenes)
    plain = stage_unet(ShapesXLConfig(**{**cfg.__dict__, "unet_steps": 4}), tmp_path / "c", tokenizer, latents,
                       scenes)
    key = "conv_in.weight"
    assert torch.equal(a[0].state_dict()[key], b[0].state_dict()[key])
    assert not torch.equal(a[0].state_dict()[key], plain[0].state_dict()[key])


def test_vae_training_lowers_the_loss(tmp_path, prepared):
    images = np.stack([np.full((64, 64, 3), c, np.uint8) for c in (0, 128, 255)] * 4)
    cfg = ShapesXLConfig(**{**ShapesXLConfig.smoke().__dict__, "vae_steps": 40, "vae_lr": 3e-3})
    losses = []
    stage_vae(cfg, tmp_path, images, progress=lambda s, i, n, loss: losses.append(loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_kill_and_resume_gives_the_same_weights(tmp_path, prepared):
    cfg, tokenizer, latents, scenes = prepared
    cfg = ShapesXLConfig(**{**cfg.__dict__, "unet_steps": 6, "checkpoint_steps": 2})
    straight = stage_unet(cfg, tmp_path / "a", tokenizer, latents, scenes)
    assert stage_unet(cfg, tmp_path / "b", tokenizer, latents, scenes, stop=lambda step: step == 3) is None
    saved = torch.load(tmp_path / "b" / "unet.ckpt", weights_only=True)
    assert saved["step"] == 2  # the last checkpoint before the kill
    resumed = stage_unet(cfg, tmp_path / "b", tokenizer, latents, scenes)
    for m1, m2 in zip(straight, resumed, strict=True):
        for (k, p1), p2 in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
            assert torch.equal(p1, p2), k


def test_a_work_folder_refuses_other_settings(tmp_path):
    train_shapes_xl(ShapesXLConfig.smoke(), tmp_path / "work", tmp_path / "model")
    other = ShapesXLConfig.smoke()
    other.seed = 1
    with pytest.raises(ValueError, match="other settings"):
        train_shapes_xl(other, tmp_path / "work", tmp_path / "model")
    # a run begun before settings were removed goes on when it held them at values that changed nothing, and is
    # refused, naming the removal, when one of them mattered
    saved = tmp_path / "work" / "config.json"
    config = json.loads(saved.read_text())
    saved.write_text(json.dumps({**config, "ground_token": 0.0, "ground_pixel": 0.0, "ground_max_t": 600,
                                 "vae_l1": 0.0, "extra": {}}))
    train_shapes_xl(ShapesXLConfig.smoke(), tmp_path / "work", tmp_path / "model")
    assert "ground_token" not in json.loads(saved.read_text())
    saved.write_text(json.dumps({**config, "ground_token": 0.1}))
    with pytest.raises(ValueError, match="ground_token=0.1, but TokenCompose's token grounding loss .* was removed"):
        train_shapes_xl(ShapesXLConfig.smoke(), tmp_path / "work", tmp_path / "model")


def test_a_work_folder_lets_a_run_go_on_for_more_steps(tmp_path):
    cfg = ShapesXLConfig.smoke()
    train_shapes_xl(cfg, tmp_path / "work", tmp_path / "model")
    longer = ShapesXLConfig.smoke()
    longer.unet_steps = cfg.unet_steps + 2
    train_shapes_xl(longer, tmp_path / "work", tmp_path / "model")
    assert torch.load(tmp_path / "work" / "unet.ckpt", weights_only=True)["step"] == cfg.unet_steps + 2
    shorter = ShapesXLConfig.smoke()
    shorter.unet_steps = 1
    with pytest.raises(ValueError, match="beyond unet_steps"):
        train_shapes_xl(shorter, tmp_path / "work", tmp_path / "model")


def test_the_decoder_stage_goes_on_when_extended(tmp_path, prepared):
    from t2i.train.shapes_xl import stage_decoder

    cfg = ShapesXLConfig(**{**prepared[0].__dict__, "decoder_steps": 2})
    images = np.stack([np.full((64, 64, 3), c, np.uint8) for c in (0, 128, 255)] * 2)
    first = stage_decoder(cfg, tmp_path, build_vae(cfg), images)
    assert torch.load(tmp_path / "decoder.ckpt", weights_only=True)["step"] == 2
    same = stage_decoder(cfg, tmp_path, build_vae(cfg), images)  # finished: loaded, not trained again
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), same.state_dict().values(), strict=True))
    longer = ShapesXLConfig(**{**cfg.__dict__, "decoder_steps": 5})
    stage_decoder(longer, tmp_path, build_vae(cfg), images)
    assert torch.load(tmp_path / "decoder.ckpt", weights_only=True)["step"] == 5
    # a decoder finished by the earlier recipe (no checkpoint kept) cannot go on: said, not ignored
    (tmp_path / "decoder.ckpt").unlink()
    with pytest.raises(ValueError, match="kept no checkpoint"):
        stage_decoder(ShapesXLConfig(**{**cfg.__dict__, "decoder_steps": 9}), tmp_path, build_vae(cfg), images,
                      finished_steps=5)
    stage_decoder(longer, tmp_path, build_vae(cfg), images, finished_steps=5)  # unchanged: loads


def test_the_caption_mix_may_change_for_the_rest_of_a_run_and_is_recorded(tmp_path):
    cfg = ShapesXLConfig.smoke()
    train_shapes_xl(cfg, tmp_path / "work", tmp_path / "model")
    more = ShapesXLConfig(**{**cfg.__dict__, "unet_steps": cfg.unet_steps + 2, "uncolored_fraction": 0.4})
    out = train_shapes_xl(more, tmp_path / "work", tmp_path / "model2")
    change = {"setting": "uncolored_fraction", "from": 0.15, "to": 0.4, "unet_step": cfg.unet_steps}
    assert json.loads((out / "RECIPE.json").read_text())["adjustments"] == [change]
    # a run saved before the setting existed used 0.15: a change from there is logged too
    config = json.loads((tmp_path / "work" / "config.json").read_text())
    del config["uncolored_fraction"]
    (tmp_path / "work" / "config.json").write_text(json.dumps(config))
    out = train_shapes_xl(ShapesXLConfig(**{**more.__dict__, "uncolored_fraction": 0.3}), tmp_path / "work",
                          tmp_path / "model3")
    later = {"setting": "uncolored_fraction", "from": 0.15, "to": 0.3, "unet_step": more.unet_steps}
    assert json.loads((out / "RECIPE.json").read_text())["adjustments"] == [change, later]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        train_shapes_xl(ShapesXLConfig(**{**more.__dict__, "uncolored_fraction": 1.5}), tmp_path / "work",
                        tmp_path / "model4")


def test_unet_depth_settings_build_a_deeper_unet():
    from t2i.train.shapes_xl import ShapesXLConfig, build_unet

    cfg = ShapesXLConfig(unet_channels=(8, 16, 16), unet_layers_per_block=2, unet_transformer_depth=(1, 2, 2),
                         text_hidden=16)
    unet = build_unet(cfg)
    assert unet.config.layers_per_block == 2 and list(unet.config.transformer_layers_per_block) == [1, 2, 2]
    assert len(unet.down_blocks[2].attentions[0].transformer_blocks) == 2
    with pytest.raises(ValueError, match="one count >= 1 per level"):
        build_unet(ShapesXLConfig(unet_channels=(8, 16, 16), unet_transformer_depth=(1, 2), text_hidden=16))


def test_a_run_goes_on_from_an_exported_model_with_a_deeper_unet(tmp_path):
    from dataclasses import replace

    from diffusers import AutoencoderKL, UNet2DConditionModel

    from t2i.train.shapes_xl import initial_unet

    small = train_shapes_xl(ShapesXLConfig.smoke(), tmp_path / "w1", tmp_path / "m1")
    cfg = replace(ShapesXLConfig.smoke(), clip_steps=0, init_from=str(small), unet_layers_per_block=2,
                  unet_transformer_depth=(1, 2, 1))
    before = UNet2DConditionModel.from_pretrained(small / "unet", torch_dtype=torch.float32).eval()
    grown = initial_unet(cfg, str(small / "unet")).eval()
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 6, 32, generator=g)
    added = {"text_embeds": torch.randn(2, 16, generator=g), "time_ids": torch.ones(2, 6)}
    with torch.no_grad():
        torch.testing.assert_close(grown(x, torch.tensor([5, 900]), ctx, added_cond_kwargs=added).sample,
                                   before(x, torch.tensor([5, 900]), ctx, added_cond_kwargs=added).sample,
                                   rtol=1e-4, atol=1e-5)
    out = train_shapes_xl(cfg, tmp_path / "w2", tmp_path / "m2")
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    assert unet.config.layers_per_block == 2 and list(unet.config.transformer_layers_per_block) == [1, 2, 1]
    assert load_tokenizer(out / "tokenizer").get_vocab() == load_tokenizer(small / "tokenizer").get_vocab()
    enc_a = AutoencoderKL.from_pretrained(small / "vae").encoder.state_dict()
    enc_b = AutoencoderKL.from_pretrained(out / "vae").encoder.state_dict()
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)  # the latent space the U-Net learnt in
    with pytest.raises(ValueError, match="init_from gives"):
        train_shapes_xl(replace(cfg, clip_steps=2), tmp_path / "w3", tmp_path / "m3")
    import shutil

    shutil.copytree(tmp_path / "w1" / "vae", tmp_path / "w4" / "vae")  # an older run's VAE, without its tuned decoder
    with pytest.raises(ValueError, match="is not the VAE of --init"):
        train_shapes_xl(cfg, tmp_path / "w4", tmp_path / "m4")
