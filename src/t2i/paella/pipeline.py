"""PaellaPipeline: token model + VQGAN + byte-level text encoder (+ optional CLIP), saved and loaded as a
folder like a diffusers pipeline:

    model_index.json        {"_class_name": "PaellaPipeline", "max_length": ..., "components": [...]}
    generator/              config.json + model.safetensors   (the token model)
    vqgan/                  config.json + model.safetensors
    text_encoder/           a transformers T5EncoderModel (ByT5; the tokenizer is bytes, no files)
    clip_text_encoder/, clip_tokenizer/   optional transformers CLIPTextModelWithProjection + tokenizer
    clip_image_encoder/     optional transformers CLIPVisionModelWithProjection (image variations)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from t2i.cancel import CancelToken
from t2i.paella.checkpoints import PICKLE_SUFFIXES, load_strict, read_state_dict
from t2i.paella.model import Paella, PaellaConfig
from t2i.paella.sampler import SamplerSettings, sample_tokens
from t2i.paella.text import byte_tokenizer, clip_ids, encode_bytes
from t2i.paella.vqgan import VQGANConfig, VQModel
from t2i.render.conjunction import Conjunct

CLASS_NAME = "PaellaPipeline"


@dataclass
class PaellaPipeline:
    model: Paella
    vqgan: VQModel
    text_encoder: Any  # T5EncoderModel over bytes
    max_length: int = 128  # bytes of prompt read (the released model: 768)
    clip_text_encoder: Any = None
    clip_tokenizer: Any = None
    clip_image_encoder: Any = None  # CLIPVisionModelWithProjection, for image variations

    def __post_init__(self) -> None:
        self.tokenizer = byte_tokenizer()
        for m in self.modules():
            m.eval()

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.model, self.vqgan, self.text_encoder, self.clip_text_encoder, self.clip_image_encoder)
                if m is not None]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> PaellaPipeline:
        for m in self.modules():
            m.to(device)
        return self

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: VQGAN factor x the token model's grid multiple."""
        return self.vqgan.cfg.factor * self.model.cfg.grid_multiple

    # ------------------------------------------------------------------ conditioning

    @torch.no_grad()
    def condition(self, texts: list[str], clip_image: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """The token model's byt5 / clip / clip_image inputs for `texts` (B of them)."""
        byt5 = encode_bytes(self.text_encoder, self.tokenizer, texts, self.max_length)
        clip = None
        if self.clip_text_encoder is not None:
            ids = clip_ids(self.clip_tokenizer, texts)
            clip = self.clip_text_encoder(input_ids=ids.to(self.device)).text_embeds
        return {"byt5": byt5, "clip": clip, "clip_image": clip_image}

    @torch.no_grad()
    def image_embedding(self, image: Image.Image) -> torch.Tensor:
        """(1, clip_embd) CLIP image embedding of `image`: pass it as `clip_image` for variations."""
        from t2i.paella.text import clip_pixels

        if self.clip_image_encoder is None:
            raise ValueError("this pipeline has no CLIP image encoder (image variations need one)")
        size = int(self.clip_image_encoder.config.image_size)
        pixels = clip_pixels([image], size).to(self.device)
        return self.clip_image_encoder(pixel_values=pixels).image_embeds

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def __call__(self, prompt: str | list[Conjunct], negative_prompt: str = "", seeds: list[int] | None = None,
                 height: int = 64,
                 width: int = 64, settings: SamplerSettings | None = None,
                 progress: Callable[[int, int], bool | None] | None = None,
                 clip_image: torch.Tensor | None = None, clip_image_weight: float = 1.0,
                 cancel: CancelToken | None = None) -> list[Image.Image]:
        """One image per seed (image k from generator seed k; the same alone or in a batch).
        `progress(i, steps)` after sampler step i (False cancels) and `cancel` checked at every step: both
        raise `t2i.cancel.Cancelled`.
        `clip_image` (1, clip_embd): a CLIP image embedding to vary (image variations), its tokens'
        attention reweighted by `clip_image_weight`.  `prompt` as a list of weighted conjuncts: composable
        diffusion (`t2i.render.conjunction`), every conjunct with the image embedding."""
        m = self.size_multiple
        if height % m or width % m:
            raise ValueError(f"{width}x{height} does not fit this model: sides must be multiples of {m}")
        seeds = [0] if seeds is None else seeds
        settings = settings or SamplerSettings()
        b = len(seeds)
        image_embeds = None if clip_image is None else clip_image.to(self.device).expand(b, -1)
        conds: list[dict[str, Any]] = []
        for text in [prompt] if isinstance(prompt, str) else [c.text for c in prompt]:
            conds.append(self.condition([text] * b, image_embeds))
            if image_embeds is not None:
                conds[-1]["clip_image_weight"] = clip_image_weight
        uncond = self.condition([negative_prompt] * b)
        f = self.vqgan.cfg.factor
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        grid = (height // f, width // f)
        if isinstance(prompt, str):
            tokens = sample_tokens(self.model, conds[0], uncond, grid, settings, gens, progress, cancel=cancel)
        else:
            tokens = sample_tokens(self.model, conds, uncond, grid, settings, gens, progress,
                                   weights=[c.weight for c in prompt], cancel=cancel)
        pixels = self.vqgan.decode(tokens).permute(0, 2, 3, 1).float().cpu().numpy()  # (B, H, W, 3) in [0, 1]
        return [Image.fromarray((p * 255).round().astype(np.uint8)) for p in pixels]

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, folder: str | Path, defaults: dict[str, Any] | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write the folder; `defaults` (steps, guidance, width, height, negative_prompt) go into
        model_index.json, where t2i's registry reads them.  `dtype` (e.g. torch.float16, to ship small
        files): every weight is stored in it, the pipeline in memory is left as it is; None = as they are."""
        import copy

        from safetensors.torch import save_file

        def stored(module: Any) -> Any:  # a copy in `dtype` for the transformers parts' own save_pretrained
            return module if dtype is None else copy.deepcopy(module).to(dtype)

        folder = Path(folder)
        for name, module, cfg in (("generator", self.model, self.model.cfg), ("vqgan", self.vqgan, self.vqgan.cfg)):
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / name / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
            save_file({k: (v if dtype is None or not v.is_floating_point() else v.to(dtype)).contiguous()
                       for k, v in module.state_dict().items()}, str(folder / name / "model.safetensors"))
        stored(self.text_encoder).save_pretrained(folder / "text_encoder")
        components = ["generator", "vqgan", "text_encoder"]
        if self.clip_text_encoder is not None:
            stored(self.clip_text_encoder).save_pretrained(folder / "clip_text_encoder")
            self.clip_tokenizer.save_pretrained(folder / "clip_tokenizer")
            components += ["clip_text_encoder", "clip_tokenizer"]
        if self.clip_image_encoder is not None:
            stored(self.clip_image_encoder).save_pretrained(folder / "clip_image_encoder")
            components.append("clip_image_encoder")
        index = {"_class_name": CLASS_NAME, "max_length": self.max_length, "components": components,
                 "defaults": {"sampler": "paella", **(defaults or {})}}
        (folder / "model_index.json").write_text(json.dumps(index, indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32
                        ) -> PaellaPipeline:
        """Load a folder written by `save_pretrained`: safetensors only (a folder of pickles is refused, never
        unpickled).  A malformed model_index.json or a missing part is a ValueError naming the file."""
        from transformers import T5EncoderModel

        folder = Path(folder)
        index = read_index(folder)
        components = index["components"]
        model = Paella(PaellaConfig.from_dict(_read_config(folder / "generator")))
        load_strict(model, read_state_dict(_weights_file(folder / "generator")), "generator")
        vqgan = VQModel(VQGANConfig.from_dict(_read_config(folder / "vqgan")))
        load_strict(vqgan, read_state_dict(_weights_file(folder / "vqgan")), "vqgan")
        safe = {"local_files_only": True, "use_safetensors": True}
        text = T5EncoderModel.from_pretrained(_transformers_folder(folder / "text_encoder"), **safe)
        clip = clip_tok = None
        if "clip_text_encoder" in components:
            from transformers import CLIPTextModelWithProjection, CLIPTokenizer

            clip = CLIPTextModelWithProjection.from_pretrained(_transformers_folder(folder / "clip_text_encoder"),
                                                               **safe).to(dtype)
            clip_tok = CLIPTokenizer.from_pretrained(folder / "clip_tokenizer", local_files_only=True)
        clip_image = None
        if "clip_image_encoder" in components:
            from transformers import CLIPVisionModelWithProjection

            clip_image = CLIPVisionModelWithProjection.from_pretrained(
                _transformers_folder(folder / "clip_image_encoder"), **safe).to(dtype)
        pipe = cls(model.to(dtype), vqgan, text.to(dtype), index["max_length"], clip, clip_tok, clip_image)
        return pipe.to(device)


REQUIRED_COMPONENTS = ("generator", "vqgan", "text_encoder")
OPTIONAL_COMPONENTS = ("clip_text_encoder", "clip_tokenizer", "clip_image_encoder")
MAX_LENGTH_LIMIT = 100_000  # bytes of prompt a saved pipeline may say it reads


def read_index(folder: Path) -> dict[str, Any]:
    """A saved pipeline's model_index.json, checked: {"_class_name": "PaellaPipeline", "max_length": int,
    "components": [subfolder names, each a folder of `folder`]}; ValueError (FileNotFoundError when absent)
    naming the file and what it should hold."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{folder}: no model_index.json (not a saved PaellaPipeline)")
    index = _json_object(index_file)
    if index.get("_class_name") != CLASS_NAME:
        raise ValueError(f"{index_file}: model_index.json is for {index.get('_class_name')!r}, not {CLASS_NAME}")
    known = REQUIRED_COMPONENTS + OPTIONAL_COMPONENTS
    components = index.get("components", list(REQUIRED_COMPONENTS))
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise ValueError(f"{index_file}: \"components\" must be a list of subfolder names from "
                         f"{', '.join(known)}, got {str(components)[:100]}")
    odd = [c for c in components if c not in known]
    if odd:
        raise ValueError(f"{index_file}: unknown components {', '.join(map(repr, odd[:5]))[:200]} (known: "
                         f"{', '.join(known)})")
    needed = [*REQUIRED_COMPONENTS, *(["clip_tokenizer"] if "clip_text_encoder" in components else [])]
    unlisted = [c for c in needed if c not in components]
    if unlisted:
        raise ValueError(f"{index_file}: \"components\" must list {', '.join(unlisted)}")
    missing = [c for c in components if not (folder / c).is_dir()]
    if missing:
        raise ValueError(f"{index_file}: lists {', '.join(missing)} but {folder} has no such subfolder")
    max_length = index.get("max_length", 128)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 1 <= max_length <= MAX_LENGTH_LIMIT:
        raise ValueError(f"{index_file}: \"max_length\" must be a whole number in [1, {MAX_LENGTH_LIMIT}], "
                         f"got {str(max_length)[:100]}")
    return {**index, "components": components, "max_length": max_length}


def _read_config(sub: Path) -> dict[str, Any]:
    file = sub / "config.json"
    if not file.is_file():
        raise ValueError(f"{file}: missing (each part of a saved PaellaPipeline has its config.json)")
    return _json_object(file)


def _json_object(file: Path) -> dict[str, Any]:
    """The JSON object in `file`; ValueError naming the file otherwise."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def _refuse_pickles(sub: Path) -> None:
    """ValueError when `sub` holds pickled weights and no safetensors (pickles can run code when loaded)."""
    if any(sub.glob("*.safetensors")):
        return
    pickles = sorted(p for p in sub.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(f"{pickles[0]}: pickled weights and no safetensors; t2i does not load pickles (they can "
                         f"run code). Convert them: `t2i convert {pickles[0]} {sub / 'model.safetensors'}`")


def _weights_file(sub: Path) -> Path:
    """`sub`/model.safetensors, the only weights file of a generator/ or vqgan/ part."""
    _refuse_pickles(sub)
    file = sub / "model.safetensors"
    if not file.is_file():
        raise ValueError(f"{file}: missing (a saved PaellaPipeline keeps its weights as safetensors)")
    return file


def _transformers_folder(sub: Path) -> Path:
    """`sub`, a transformers model folder, after refusing one that holds only pickles."""
    _refuse_pickles(sub)
    return sub
