"""SDXL single-file checkpoints: our LDM-layout writer, read back by diffusers' single-file loader."""

from __future__ import annotations

import pytest
import torch

from t2i.backends.sdxl_single_file import TE1, TE2, UNET, VAE, save_sdxl_single_file, sdxl_single_file_state


def _pipeline_with_two_widths(folder):
    """A tiny random SDXL pipeline whose text encoders differ in width (16 and 24), as SDXL's do."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    from t2i.train.shapes_xl import ShapesXLConfig, build_text_encoders, build_vae, export_pipeline
    from t2i.train.tokenizer import load_tokenizer, words_of, write_word_tokenizer

    cfg = ShapesXLConfig.smoke()
    torch.manual_seed(0)
    tokenizer = load_tokenizer(write_word_tokenizer(words_of(["a red circle above a blue square"]), folder / "tok"))
    te1, _ = build_text_encoders(cfg, tokenizer)  # hidden 16
    wide = ShapesXLConfig.smoke()
    wide.text_hidden = 24
    _, te2 = build_text_encoders(wide, tokenizer)  # hidden 24, projection 24
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(8, 16, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2, use_linear_projection=True, cross_attention_dim=16 + 24,
        transformer_layers_per_block=(1, 1, 2), addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24 + 6 * 8, norm_num_groups=8)
    export_pipeline(folder / "pipe", build_vae(), unet, te1, te2, tokenizer, cfg, dtype=torch.float32)
    return StableDiffusionXLPipeline.from_pretrained(folder / "pipe"), folder / "pipe"


@pytest.fixture(scope="module")
def two_widths(tmp_path_factory):
    """(pipeline, its folder, its single file), built once for the module."""
    root = tmp_path_factory.mktemp("single")
    pipe, folder = _pipeline_with_two_widths(root)
    path = root / "model.safetensors"
    return pipe, folder, path, save_sdxl_single_file(pipe, path)


def test_a_single_file_round_trips_through_diffusers_loader(two_widths):
    from diffusers import StableDiffusionXLPipeline
    from safetensors import safe_open

    pipe, folder, path, n = two_widths

    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert len(keys) == n
    assert {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.label_emb.0.0.weight",
            "model.diffusion_model.input_blocks.3.0.op.weight", "model.diffusion_model.output_blocks.2.2.conv.weight",
            "first_stage_model.decoder.up.0.block.0.conv1.weight", "first_stage_model.encoder.mid.attn_1.q.weight",
            "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
            "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
            "conditioner.embedders.1.model.text_projection"} <= keys
    back = StableDiffusionXLPipeline.from_single_file(str(path), config=str(folder), local_files_only=True)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(pipe, name).state_dict(), getattr(back, name).state_dict()
        assert set(a) == set(b), name
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_the_backend_draws_the_same_image_from_the_file_and_the_folder(two_widths):
    import numpy as np

    from t2i.backends import default_registry
    from t2i.generate import generate
    from t2i.types import GenerationRequest

    _, folder, path, _ = two_widths
    # every setting given: the folder carries its own defaults (t2i_defaults.json), a bare file does not
    req = GenerationRequest("a red circle", model=str(folder), seed=3, steps=2, width=64, height=64, guidance=2.0,
                            sampler="euler", negative_prompt="")
    a = generate(req, default_registry()).images[0]
    b = generate(req.with_(model=str(path), model_options={"config": str(folder)}), default_registry()).images[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_text_encoders_of_one_width_are_refused(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    from tests.tiny_sdxl import build_tiny_sdxl

    pipe = StableDiffusionXLPipeline.from_pretrained(build_tiny_sdxl(tmp_path))
    with pytest.raises(ValueError, match="tells them apart by width"):
        sdxl_single_file_state(pipe)


def test_the_writer_never_overwrites(two_widths, tmp_path):
    pipe = two_widths[0]
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"keep")
    with pytest.raises(ValueError, match="not overwriting"):
        save_sdxl_single_file(pipe, path)
    assert path.read_bytes() == b"keep"
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_sdxl_single_file(pipe, tmp_path / "m.ckpt")


def test_every_weight_gets_one_prefix(two_widths):
    pipe = two_widths[0]
    state = sdxl_single_file_state(pipe)
    assert all(k.startswith((UNET, VAE, TE1, TE2)) for k in state)
    total = sum(sum(1 for k in getattr(pipe, c).state_dict() if not k.endswith("position_ids"))
                for c in ("unet", "vae", "text_encoder", "text_encoder_2"))
    # te2's q, k, v (weight and bias) become one in_proj pair per layer: 4 fewer tensors per layer
    assert len(state) == total - 4 * pipe.text_encoder_2.config.num_hidden_layers


def test_cli_converts_an_sdxl_folder_and_explains_refusals(two_widths, tmp_path, capsys):
    from t2i.cli import main
    from t2i.registry import package_weights

    _, folder, _, n = two_widths
    assert main(["convert", str(folder), str(tmp_path / "out.safetensors")]) == 0
    assert f"{n} tensors" in capsys.readouterr().out
    assert main(["convert", str(package_weights("shapes-xl")), str(tmp_path / "shapes.safetensors")]) == 2
    assert "tells them apart by width" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), str(tmp_path / "e.safetensors")]) == 2
    assert "not a diffusers SDXL folder" in capsys.readouterr().err
    assert not (tmp_path / "shapes.safetensors").exists() and not (tmp_path / "e.safetensors").exists()
