"""Write a diffusers SDXL pipeline as one original-layout ("LDM") `.safetensors` file, the layout that
A1111/Forge, ComfyUI and diffusers' `from_single_file` read.

Key layout (Stability's generative-models repo, as diffusers' single-file loader reads it back):
- U-Net under `model.diffusion_model.`: `input_blocks.0.0` = conv_in; then per level, per layer, a block
  `input_blocks.{i}` holding the resnet (`.0`) and the attention (`.1`), and one block with the downsampler
  (`input_blocks.{i}.0.op`) after every level but the last; `middle_block.{0,1,2}` = resnet, attention,
  resnet; `output_blocks.{j}` likewise per up level (layers_per_block + 1 each), the upsampler last in the
  level's last block (`.2.conv` after an attention, `.1.conv` without); `time_embed.{0,2}`,
  `label_emb.0.{0,2}` (SDXL's added text/time embedding), `out.{0,2}` (norm, conv_out).
  Resnets: norm1/conv1/time_emb_proj/norm2/conv2/conv_shortcut -> in_layers.0/in_layers.2/emb_layers.1/
  out_layers.0/out_layers.3/skip_connection; attention blocks keep their diffusers names.
- VAE under `first_stage_model.`: encoder.down.{i}.block.{j} / .downsample.conv, decoder.up.{n-1-i}
  (LDM counts up levels from the bottom), mid.block_1 / attn_1 / block_2, norm_out; mid attention
  norm/q/k/v/proj_out as 1x1 convolutions.
- Text encoder 1 (CLIP-L role) under `conditioner.embedders.0.transformer.` with transformers' names;
  text encoder 2 (OpenCLIP-bigG role) under `conditioner.embedders.1.model.` with OpenCLIP's names:
  transformer.resblocks.N.{ln_1, attn.in_proj_(weight|bias) = q ++ k ++ v, attn.out_proj, ln_2, mlp.c_fc,
  mlp.c_proj},
  token_embedding, positional_embedding, ln_final, text_projection (transposed: x @ P).

diffusers tells the two text encoders apart by their width (768 vs 1280 in SDXL): a pipeline whose two
encoders have the same width would load back wrongly, so it is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

UNET, VAE = "model.diffusion_model.", "first_stage_model."
TE1, TE2 = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_OPENCLIP = (("text_model.encoder.layers.", "transformer.resblocks."), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
             (".mlp.fc1.", ".mlp.c_fc."), (".mlp.fc2.", ".mlp.c_proj."), (".self_attn.", ".attn."))


def _move(sd: dict[str, torch.Tensor], out: dict[str, torch.Tensor], src: str, dst: str,
          renames: tuple[tuple[str, str], ...] = ()) -> None:
    """Every key of `sd` under prefix `src` goes to `out` under `dst`, with `renames` applied to the rest."""
    for key in [k for k in sd if k.startswith(src)]:
        rest = key[len(src):]
        for a, b in renames:
            rest = rest.replace(a, b)
        out[dst + rest] = sd.pop(key)


def unet_to_ldm(unet: Any) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel's state dict in LDM names (without the `model.diffusion_model.` prefix)."""
    cfg = unet.config
    sd = dict(unet.state_dict())
    out: dict[str, torch.Tensor] = {}
    for a, b in (("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                 ("add_embedding.linear_1", "label_emb.0.0"), ("add_embedding.linear_2", "label_emb.0.2"),
                 ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2")):
        _move(sd, out, a + ".", b + ".")
    per_level = cfg.layers_per_block
    if not isinstance(per_level, int):
        raise ValueError("only one layers_per_block for every level is supported")
    n_levels = len(cfg.block_out_channels)
    i = 1
    for level in range(n_levels):
        for layer in range(per_level):
            _move(sd, out, f"down_blocks.{level}.resnets.{layer}.", f"input_blocks.{i}.0.", _RESNET)
            _move(sd, out, f"down_blocks.{level}.attentions.{layer}.", f"input_blocks.{i}.1.")
            i += 1
        if level < n_levels - 1:
            _move(sd, out, f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{i}.0.op.")
            i += 1
    _move(sd, out, "mid_block.resnets.0.", "middle_block.0.", _RESNET)
    _move(sd, out, "mid_block.attentions.0.", "middle_block.1.")
    _move(sd, out, "mid_block.resnets.1.", "middle_block.2.", _RESNET)
    j = 0
    for level in range(n_levels):
        for layer in range(per_level + 1):
            has_attention = any(k.startswith(f"up_blocks.{level}.attentions.{layer}.") for k in sd)
            _move(sd, out, f"up_blocks.{level}.resnets.{layer}.", f"output_blocks.{j}.0.", _RESNET)
            _move(sd, out, f"up_blocks.{level}.attentions.{layer}.", f"output_blocks.{j}.1.")
            if layer == per_level:
                slot = 2 if has_attention else 1
                _move(sd, out, f"up_blocks.{level}.upsamplers.0.conv.", f"output_blocks.{j}.{slot}.conv.")
            j += 1
    if sd:
        raise ValueError(f"U-Net weights with no LDM name: {sorted(sd)[:8]}")
    return out


def vae_to_ldm(vae: Any) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL's state dict in LDM names (without the `first_stage_model.` prefix)."""
    sd = dict(vae.state_dict())
    out: dict[str, torch.Tensor] = {}
    n = len(vae.config.block_out_channels)
    for part in ("encoder", "decoder"):
        _move(sd, out, f"{part}.conv_norm_out.", f"{part}.norm_out.")
        _move(sd, out, f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", (("conv_shortcut", "nin_shortcut"),))
        _move(sd, out, f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", (("conv_shortcut", "nin_shortcut"),))
        for key in [k for k in sd if k.startswith(f"{part}.mid_block.attentions.0.")]:
            name = key.rsplit(".", 2)[-2:]  # e.g. ["to_q", "weight"]
            ldm = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v"}.get(name[0], name[0])
            if key.endswith(("to_out.0.weight", "to_out.0.bias")):
                ldm = "proj_out"
            value = sd.pop(key)
            if value.ndim == 2:  # linear -> 1x1 convolution
                value = value[:, :, None, None]
            out[f"{part}.mid.attn_1.{ldm}.{name[1]}"] = value
    for level in range(n):
        _move(sd, out, f"encoder.down_blocks.{level}.resnets.", f"encoder.down.{level}.block.",
              (("conv_shortcut", "nin_shortcut"),))
        _move(sd, out, f"encoder.down_blocks.{level}.downsamplers.0.conv.", f"encoder.down.{level}.downsample.conv.")
        _move(sd, out, f"decoder.up_blocks.{level}.resnets.", f"decoder.up.{n - 1 - level}.block.",
              (("conv_shortcut", "nin_shortcut"),))
        _move(sd, out, f"decoder.up_blocks.{level}.upsamplers.0.conv.", f"decoder.up.{n - 1 - level}.upsample.conv.")
    for name in ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out.", "quant_conv.",
                 "post_quant_conv."):
        _move(sd, out, name, name)
    if sd:
        raise ValueError(f"VAE weights with no LDM name: {sorted(sd)[:8]}")
    return out


def _clip_state(model: Any) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model's weights named as in the original files: under `text_model.` (newer
    transformers drop that level from CLIPTextModel), without the position_ids buffer."""
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("position_ids"):
            continue
        out[key if key.startswith(("text_model.", "text_projection.")) else "text_model." + key] = value
    return out


def openclip_from_clip(te2: Any) -> dict[str, torch.Tensor]:
    """A transformers CLIPTextModelWithProjection's state dict in OpenCLIP's names."""
    sd = _clip_state(te2)
    out: dict[str, torch.Tensor] = {}
    out["token_embedding.weight"] = sd.pop("text_model.embeddings.token_embedding.weight")
    out["positional_embedding"] = sd.pop("text_model.embeddings.position_embedding.weight")
    out["ln_final.weight"] = sd.pop("text_model.final_layer_norm.weight")
    out["ln_final.bias"] = sd.pop("text_model.final_layer_norm.bias")
    out["text_projection"] = sd.pop("text_projection.weight").T.contiguous()  # (hidden, proj): x @ P
    for layer in range(te2.config.num_hidden_layers):
        p = f"text_model.encoder.layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
                [sd.pop(f"{p}{x}_proj.{kind}") for x in ("q", "k", "v")])
    rest: dict[str, torch.Tensor] = {}
    _move(sd, rest, "text_model.encoder.layers.", "text_model.encoder.layers.", ())
    for key, value in rest.items():
        for a, b in _OPENCLIP:
            key = key.replace(a, b)
        out[key] = value
    if sd:
        raise ValueError(f"text encoder 2 weights with no OpenCLIP name: {sorted(sd)[:8]}")
    return out


def sdxl_single_file_state(pipe: Any) -> dict[str, torch.Tensor]:
    """Every weight of an SDXL pipeline in one LDM-layout state dict."""
    w1 = pipe.text_encoder.config.hidden_size
    w2 = pipe.text_encoder_2.config.hidden_size
    if w1 == w2:
        raise ValueError(f"both text encoders are {w1} wide: diffusers' single-file loader tells them apart by "
                         "width (768 and 1280 in SDXL) and would load text_encoder_2 with text_encoder's weights")
    out = {UNET + k: v for k, v in unet_to_ldm(pipe.unet).items()}
    out.update({VAE + k: v for k, v in vae_to_ldm(pipe.vae).items()})
    out.update({TE1 + k: v for k, v in _clip_state(pipe.text_encoder).items()})
    out.update({TE2 + k: v for k, v in openclip_from_clip(pipe.text_encoder_2).items()})
    return out


def save_sdxl_single_file(pipe: Any, path: Path) -> int:
    """Write `pipe` as one LDM-layout .safetensors file (refusing to overwrite); returns the tensor count."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: the output must be a .safetensors file")
    if path.exists():
        raise ValueError(f"{path} exists; not overwriting it")
    state = {k: v.detach().contiguous() for k, v in sdxl_single_file_state(pipe).items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    return len(state)
