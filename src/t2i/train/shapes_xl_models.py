"""shapes-xl's networks: the VAE, the two CLIP text encoders, the U-Net (from scratch or grown from an earlier
one) and SDXL's scheduler, at the sizes a `ShapesXLConfig` gives; and SDXL's text conditioning.
Cross-attention sits at every U-Net level, the highest-resolution one included, for regional control."""

from __future__ import annotations

import torch

from t2i.train.diffusion import check_parametrisation
from t2i.train.shapes_xl_config import ShapesXLConfig
from t2i.train.tokenizer import EOS, MAX_LENGTH

SIZE = 64
TIME_IDS = (SIZE, SIZE, 0, 0, SIZE, SIZE)  # original size, crop top-left, target size (SDXL micro-conditioning)


def build_vae(cfg: ShapesXLConfig | None = None):
    from diffusers import AutoencoderKL

    cfg = cfg or ShapesXLConfig()
    n = len(cfg.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg.vae_channels),
                         layers_per_block=cfg.vae_layers, latent_channels=4, norm_num_groups=8, sample_size=SIZE)


def build_text_encoders(cfg: ShapesXLConfig, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    eos = tokenizer.convert_tokens_to_ids(EOS)
    common = dict(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=2 * cfg.text_hidden,
                  num_hidden_layers=cfg.text_layers, num_attention_heads=max(1, cfg.text_hidden // 16),
                  max_position_embeddings=MAX_LENGTH, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                  pad_token_id=eos, hidden_act="gelu")
    te1 = CLIPTextModel(CLIPTextConfig(**common))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**common, projection_dim=cfg.text_hidden))
    return te1, te2


def build_unet(cfg: ShapesXLConfig):
    from diffusers import UNet2DConditionModel

    ch = tuple(cfg.unet_channels)
    n = len(ch)
    depth = tuple(cfg.unet_transformer_depth)
    if len(depth) != n or min(depth) < 1:
        raise ValueError(f"unet_transformer_depth needs one count >= 1 per level ({n} levels), got {depth}: "
                         "every level keeps cross-attention, for regional control")
    return UNet2DConditionModel(
        sample_size=SIZE // 4, in_channels=4, out_channels=4, layers_per_block=cfg.unet_layers_per_block,
        block_out_channels=ch,
        down_block_types=("CrossAttnDownBlock2D",) * n, up_block_types=("CrossAttnUpBlock2D",) * n,
        attention_head_dim=tuple(max(1, c // 32) for c in ch), use_linear_projection=True,
        cross_attention_dim=2 * cfg.text_hidden, transformer_layers_per_block=depth,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=cfg.text_hidden + 6 * 8, norm_num_groups=8,
    )


def initial_unet(cfg: ShapesXLConfig, folder: str):
    """The U-Net in `folder`, grown (function unchanged) to this recipe's blocks per level and transformer
    depth when it has fewer."""
    from diffusers import UNet2DConditionModel

    from t2i.unet.grow import grow_unet
    from t2i.unet.student import per_level

    start = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32)
    depth = tuple(cfg.unet_transformer_depth)
    n = len(start.config.block_out_channels)
    if (start.config.layers_per_block, tuple(per_level(start.config.transformer_layers_per_block, n))) == (
            cfg.unet_layers_per_block, depth):
        return start
    return grow_unet(start, cfg.unet_layers_per_block, depth)[0]


def build_scheduler(cfg: ShapesXLConfig | None = None):
    from diffusers import EulerDiscreteScheduler

    # SDXL's betas and scheduler; with zero terminal SNR the betas are rescaled and sampling starts at the
    # last training step (trailing spacing), from pure noise, as Lin et al. 2024 prescribe.
    cfg = cfg or ShapesXLConfig()
    check_parametrisation(cfg.prediction_type, cfg.zero_terminal_snr)
    zero = cfg.zero_terminal_snr
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, prediction_type=cfg.prediction_type,
                                  rescale_betas_zero_snr=zero, timestep_spacing="trailing" if zero else "leading",
                                  steps_offset=0 if zero else 1)


def encode_text(tokenizer, te1, te2, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL's text conditioning: (B, 77, 2*hidden) penultimate states of both encoders, (B, hidden) pooled."""
    ids = tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                    return_tensors="pt").input_ids  # (B, 77)
    return encode_ids(te1, te2, ids)


def encode_ids(te1, te2, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode_text` of token ids (B, 77) already made (moved to the encoders' device here)."""
    ids = ids.to(te1.device)
    h1 = te1(ids, output_hidden_states=True).hidden_states[-2]  # (B, 77, hidden)
    o2 = te2(ids, output_hidden_states=True)
    return torch.cat([h1, o2.hidden_states[-2]], dim=-1), o2.text_embeds
