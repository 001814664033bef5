"""The U-Net configurations of SDXL-base and of KOALA's two students, as published, for building them with
random weights (diffusers' `UNet2DConditionModel` keyword arguments) and their parameter counts.

KOALA (Lee et al. 2023, "KOALA: Empirical Lessons Toward Memory-Efficient and Fast Diffusion Models for
Text-to-Image Synthesis") keeps SDXL-base's widths and cuts depth: one ResNet per level, fewer transformer
blocks at the deepest level, and for KOALA-700M no mid block.
"""

from __future__ import annotations

from typing import Any

# shared by all three: SDXL-base's widths, heads, text width and micro-conditioning
SDXL_WIDTHS: dict[str, Any] = dict(
    sample_size=128, in_channels=4, out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
# name -> (the depths that set it apart, its published parameter count)
DEPTHS: dict[str, tuple[dict[str, Any], int]] = {
    "sdxl-base": (dict(layers_per_block=2, transformer_layers_per_block=(1, 2, 10)), 2_567_463_684),
    "koala-1b": (dict(layers_per_block=1, transformer_layers_per_block=(1, 2, 6)), 1_161_184_324),
    "koala-700m": (dict(layers_per_block=1, transformer_layers_per_block=(1, 2, 5), mid_block_type=None),
                   782_822_724),
}
# the same U-Nets with narrow widths, for quick runs: (text_embeds width) + 6 x addition_time_embed_dim = 64
NARROW: dict[str, Any] = dict(block_out_channels=(32, 64, 128), attention_head_dim=(1, 2, 4), cross_attention_dim=32,
                              addition_time_embed_dim=8, projection_class_embeddings_input_dim=64, norm_num_groups=16)


def unet_config(name: str, narrow: bool = False) -> dict[str, Any]:
    """`name`'s U-Net keyword arguments (`narrow`: NARROW's widths, the same depths)."""
    if name not in DEPTHS:
        raise ValueError(f"no published U-Net {name!r} (known: {', '.join(DEPTHS)})")
    return {**SDXL_WIDTHS, **DEPTHS[name][0], **(NARROW if narrow else {})}


def published_parameters(name: str) -> int:
    """`name`'s parameter count as published (its U-Net alone)."""
    return DEPTHS[name][1]
