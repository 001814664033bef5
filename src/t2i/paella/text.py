"""Paella's text conditioning: ByT5 encoder states (bytes in, no vocabulary file), optional CLIP
text and image embeddings (transformers' CLIP classes; the real ones are CLIP ViT-H/14 laion2b)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def byte_tokenizer() -> Any:
    """ByT5's tokenizer: UTF-8 bytes + 3 (pad 0, eos 1, unk 2); it needs no files."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def tiny_byt5_encoder(d_model: int = 64, layers: int = 2, heads: int = 2, d_ff: int = 128) -> Any:
    """A small T5 encoder over ByT5's 384-entry byte vocabulary (for paella-tiny and tests)."""
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=384, d_model=d_model, d_kv=d_model // heads, d_ff=d_ff, num_layers=layers,
                   num_heads=heads, feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0,
                   eos_token_id=1)
    return T5EncoderModel(cfg)


def byte_ids(tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    """texts -> (B, max_length) byte ids, padded with the pad byte as Paella does (on the CPU)."""
    return tokenizer(texts, padding="max_length", max_length=max_length, truncation=True,
                     return_tensors="pt").input_ids


def encode_bytes(encoder: Any, tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    """texts -> (B, max_length, d_model) last hidden states."""
    return encoder(input_ids=byte_ids(tokenizer, texts, max_length).to(encoder.device)).last_hidden_state


def clip_text_folders(folder: Path) -> tuple[Path, Path]:
    """(encoder, tokenizer) sub-folders of a CLIP text tower in `folder`: a Paella pipeline's
    clip_text_encoder/ + clip_tokenizer/, or an SDXL pipeline's second tower, text_encoder_2/ + tokenizer_2/
    (a CLIPTextModelWithProjection, whose `text_embeds` Paella takes)."""
    for enc, tok in (("clip_text_encoder", "clip_tokenizer"), ("text_encoder_2", "tokenizer_2")):
        if (folder / enc / "config.json").exists() and (folder / tok).is_dir():
            return folder / enc, folder / tok
    raise ValueError(f"{folder} holds no CLIP text tower: expected clip_text_encoder/ + clip_tokenizer/ "
                     "(Paella) or text_encoder_2/ + tokenizer_2/ (SDXL)")


def clip_text_width(folder: Path) -> int:
    """The projection width of the CLIP text tower in `folder` (`clip_text_folders`), read from its config."""
    enc, _ = clip_text_folders(folder)
    return int(json.loads((enc / "config.json").read_text(encoding="utf-8"))["projection_dim"])


def load_clip_text(folder: Path) -> tuple[Any, Any]:
    """(CLIPTextModelWithProjection in float32, eval mode, frozen; its CLIPTokenizer) from `folder`'s tower."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    enc, tok = clip_text_folders(folder)
    model = CLIPTextModelWithProjection.from_pretrained(enc, local_files_only=True).float().eval()
    model.requires_grad_(False)
    return model, CLIPTokenizer.from_pretrained(tok, local_files_only=True)


def clip_ids(tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """texts -> (B, model_max_length) CLIP token ids, padded to the full length as the pipeline pads them."""
    return tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt").input_ids


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixels(images: list[Any], size: int) -> torch.Tensor:
    """PIL images -> (B, 3, size, size) CLIP inputs: shortest side to `size` (bicubic), centre crop,
    CLIP's mean/std normalisation (the preprocessing of the OpenAI/LAION CLIP models)."""
    import numpy as np
    from PIL import Image

    out = []
    for im in images:
        im = im.convert("RGB")
        scale = size / min(im.size)
        w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
        im = im.resize((w, h), Image.BICUBIC)
        left, top = (w - size) // 2, (h - size) // 2
        arr = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
        out.append((arr - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
