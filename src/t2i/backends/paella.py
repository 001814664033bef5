"""Paella backend: a saved PaellaPipeline folder (paella-tiny, or any folder written by
`PaellaPipeline.save_pretrained`), or the released v3 weights (paella_v3.pt + vqgan_f4.pt, with ByT5-XL
and CLIP ViT-H/14 text encoders from their hubs).

Settings: request.steps, request.guidance (CFG), negative prompt; options `renoise_steps` (default
steps - 1), `temperature` ("T0,T1", default 0.7,0.3), `cfg_steps` (CFG only for the first k steps),
`batch_size`, `device`.  Image k comes from seed + k, the same alone or in a batch.
Image variations: option `variation_image` (a path) conditions on that image's CLIP image embedding (needs a
pipeline with a CLIP image encoder, as the released v3 has), its tokens' attention weighted by
`variation_weight` (default 1.0).  The backend contract is `t2i.backends.base`'s: regions no (`t2i.generate`
flattens a Canvas into one prompt), variations when the pipeline has a CLIP image encoder.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from t2i.backends.base import Callback, Steps, checked_request
from t2i.backends.options import (
    OptionSpec,
    Schema,
    call_options,
    check_path,
    device_spec,
    make_schema,
    resolve_device,
    same_device,
    validate_at_load,
)
from t2i.cancel import CancelToken
from t2i.limits import MAX_IMAGES, MAX_STEPS
from t2i.registry import ModelError, ResolvedModel
from t2i.types import GenerationRequest, GenerationResult, RequestError

MAX_VARIATION_BYTES = 64 * 1024 * 1024  # a variation_image file
RELEASED_FILES = ("paella_v3.pt", "vqgan_f4.pt")
BYT5_XL = "google/byt5-xl"
CLIP_H = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
MAX_TEMPERATURE = 10.0
NATIVE_SIDE = 256  # the side of a request that leaves its size open: the released v3's 256x256
TEMPERATURE_FORM = f"two numbers in (0, {MAX_TEMPERATURE:g}], start and end temperature, e.g. 0.7,0.3"


def _temperatures(value: Any) -> tuple[float, float]:
    """Option temperature ("T0,T1") as two finite numbers in (0, MAX_TEMPERATURE]; ValueError otherwise."""
    if not isinstance(value, str) or len(value) > 100:
        raise ValueError("")
    parts = value.split(",")
    if len(parts) != 2:
        raise ValueError(f"{len(parts)} number{'s' if len(parts) != 1 else ''} given")
    try:
        temps = (float(parts[0]), float(parts[1]))
    except ValueError:
        raise ValueError("") from None
    if not all(math.isfinite(t) and 0 < t <= MAX_TEMPERATURE for t in temps):
        raise ValueError("")
    return temps


def _temperature(value: Any) -> str:
    _temperatures(value)
    return value


SCHEMA = make_schema(
    device_spec(),
    OptionSpec("byt5", "str", f"the released v3's ByT5 text encoder (default {BYT5_XL})", when="load", file=True,
               form="a hub id or a local folder", check=check_path),
    OptionSpec("clip", "str", f"the released v3's CLIP text encoder (default {CLIP_H})", when="load", file=True,
               form="a hub id or a local folder", check=check_path),
    OptionSpec("renoise_steps", "int", "re-noise after the first k steps (default steps - 1)", lo=0, hi=MAX_STEPS),
    OptionSpec("temperature", "str", "sampling temperature, moving linearly from the first to the second (default "
               "0.7,0.3)", form=TEMPERATURE_FORM, check=_temperature),
    OptionSpec("cfg_steps", "int", "classifier-free guidance for the first k steps only (default every step)", lo=0,
               hi=MAX_STEPS),
    OptionSpec("batch_size", "int", "images per sampler call (default 4)", lo=1, hi=MAX_IMAGES),
    OptionSpec("variation_image", "str", "vary this image (needs a CLIP image encoder)", file=True,
               form="the path of a local image", check=check_path),
    OptionSpec("variation_weight", "float", "attention weight of the variation image's tokens (default 1)", lo=0.0,
               hi=100.0, lo_open=True),
)


def _released(resolved: ResolvedModel, options: Mapping[str, Any], device: str):
    """The released v3 pipeline from the hub cache (or downloaded when online)."""
    from huggingface_hub import hf_hub_download
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel

    from t2i.paella.checkpoints import load_strict, read_state_dict
    from t2i.paella.model import Paella, PaellaConfig
    from t2i.paella.pipeline import PaellaPipeline
    from t2i.paella.vqgan import VQGANConfig, VQModel

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    repo = resolved.spec.source
    try:
        paths = [hf_hub_download(repo, f, local_files_only=offline) for f in RELEASED_FILES]
        byt5 = T5EncoderModel.from_pretrained(options.get("byt5", BYT5_XL), local_files_only=offline)
        clip_src = options.get("clip", CLIP_H)
        clip = CLIPTextModelWithProjection.from_pretrained(clip_src, local_files_only=offline)
        clip_tok = CLIPTokenizer.from_pretrained(clip_src, local_files_only=offline)
    except OSError as e:
        hint = " (HF_HUB_OFFLINE is set: fetch them once with network, e.g. `huggingface-cli download " \
               f"{repo} {' '.join(RELEASED_FILES)}`)" if offline else ""
        raise ModelError(f"{repo}: the Paella v3 weights or its text encoders are not available{hint}: {e}") from e
    model, vqgan = Paella(PaellaConfig()), VQModel(VQGANConfig())
    load_strict(model, read_state_dict(paths[0]), "paella_v3.pt")
    load_strict(vqgan, read_state_dict(paths[1]), "vqgan_f4.pt")
    return PaellaPipeline(model, vqgan, byt5, 768, clip, clip_tok).to(device)


@dataclass
class PaellaBackend:
    """A loaded PaellaPipeline and the options it was loaded with."""

    schema: ClassVar[Schema] = SCHEMA
    pipe: Any  # PaellaPipeline
    resolved: ResolvedModel
    options: dict[str, Any]  # validated
    device: str = "cpu"

    @property
    def supports_regions(self) -> bool:
        return False

    @property
    def supports_variations(self) -> bool:
        """Option variation_image works when the pipeline has a CLIP image encoder (the released v3 has)."""
        return self.pipe.clip_image_encoder is not None

    def _same_device(self, name: str, asked: Any, loaded: Any) -> bool:
        """A call's device option names the device this model runs on (auto or its resolved name)."""
        return name == "device" and same_device(self.device, asked)

    @classmethod
    def load(cls, resolved: ResolvedModel, options: Mapping[str, Any]) -> PaellaBackend:
        """Load a saved pipeline folder or the released v3 weights; options are checked first (ModelError)."""
        options = validate_at_load(SCHEMA, options, "Paella")
        device = resolve_device(options.get("device", "auto"))
        loc = resolved.location
        own = sorted({"byt5", "clip"} & set(options))
        if loc is not None and own:
            raise ModelError(f"option {', '.join(own)} picks the released v3's text encoders; {loc} is a saved "
                             "pipeline with its own")
        if loc is not None and (loc / "model_index.json").is_file():
            from t2i.paella.pipeline import PaellaPipeline

            try:
                pipe = PaellaPipeline.from_pretrained(loc, device=device)
            except (OSError, ValueError, TypeError) as e:  # TypeError: a config whose values do not fit
                raise ModelError(f"{loc}: cannot load a Paella pipeline: {e}") from e
        elif loc is None:
            pipe = _released(resolved, options, device)
        else:
            raise ModelError(f"{loc}: not a PaellaPipeline folder (no model_index.json)")
        return cls(pipe, resolved, dict(options), device)

    def _settings(self, request: GenerationRequest, opts: Mapping[str, Any]):
        from t2i.paella.sampler import SamplerSettings

        try:
            return SamplerSettings(request.steps, opts.get("renoise_steps", request.steps - 1),
                                   _temperatures(opts.get("temperature", "0.7,0.3")), float(request.guidance),
                                   opts.get("cfg_steps")).validate()
        except ValueError as e:
            raise RequestError(str(e)) from None

    def generate(self, request: GenerationRequest, callback: Callback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        """Generate request.n_images images; image k from seed request.seed + k (`t2i.backends.base`'s contract:
        `callback(done, total)` after every sampler step, `cancel` checked at each)."""
        checked = checked_request(request, "Paella", size_multiple=self.pipe.size_multiple, native_size=NATIVE_SIDE,
                                  regions=False)
        request = checked.request
        if request.sampler not in (None, "paella"):
            raise RequestError(f"Paella has its own sampler ('paella'; tune it with renoise_steps, temperature, "
                               f"cfg_steps), not {request.sampler!r}")
        opts = call_options(SCHEMA, self.options, request.model_options, "Paella", self._same_device)
        settings = self._settings(request, opts)
        warnings = []
        for text in [c.text for c in checked.conjuncts] if checked.conjuncts else [request.prompt]:
            n_bytes = len(text.encode("utf-8")) + 1
            if n_bytes > self.pipe.max_length:
                warnings.append(f"prompt is {n_bytes} bytes; the text encoder reads {self.pipe.max_length}, so the "
                                "rest is cut")
        prompt = checked.conjuncts or request.prompt  # a list: AND (composable diffusion)
        variation = self._variation(opts)
        batch = opts.get("batch_size", 4)
        steps = Steps(settings.steps * request.n_images, callback, cancel)

        def progress(i: int, n: int) -> None:  # after sampler step i of n, for the batch's len(ks) images
            steps.advance(len(ks))

        steps.check()  # a call cancelled before it starts draws nothing
        images, seeds = [], []
        t0 = time.perf_counter()
        for start in range(0, request.n_images, batch):
            ks = list(range(start, min(start + batch, request.n_images)))
            steps.check()  # between the batches of the call
            images += self.pipe(prompt, request.negative_prompt or "", [request.seed + k for k in ks],
                                int(request.height), int(request.width), settings, progress, cancel=cancel,
                                **variation)
            seeds += [request.seed + k for k in ks]
        elapsed = time.perf_counter() - t0
        return GenerationResult(request=request, images=images, seeds=seeds,
                                prompt_used=request.prompt, negative_prompt_used=request.negative_prompt or "",
                                timings={"generate": elapsed, "per_image": elapsed / request.n_images},
                                warnings=warnings, device=self.device, dtype="float32")

    def _variation(self, opts: Mapping[str, Any]) -> dict[str, Any]:
        """The pipeline's clip_image arguments for option `variation_image` ({} without it)."""
        path = opts.get("variation_image")
        if not path:
            if "variation_weight" in opts:
                raise RequestError("variation_weight needs variation_image")
            return {}
        if self.pipe.clip_image_encoder is None:
            raise RequestError(f"{self.resolved.spec.name} has no CLIP image encoder, so it cannot make image "
                               "variations (the released Paella v3 with CLIP ViT-H/14 can)")
        weight = opts.get("variation_weight", 1.0)
        from PIL import Image

        from t2i.userfiles import open_user_file

        try:
            with open_user_file(path, MAX_VARIATION_BYTES) as f, Image.open(f) as im:
                image = im.convert("RGB")
        except (OSError, Image.DecompressionBombError) as e:
            raise RequestError(f"cannot read variation_image {path!r}: {e}") from e
        return {"clip_image": self.pipe.image_embedding(image), "clip_image_weight": weight}
