"""SDXL backend (KOALA, SDXL base, shapes-xl, any diffusers SDXL folder or single-file checkpoint).

Float32 on CPU, float16 on CUDA with the VAE upcast for decoding (the SDXL VAE overflows in float16
and gives black images).  Image k of a request uses its own CPU generator seeded with seed + k, so a
replay of one image with n_images=1 reproduces it exactly.  The backend contract is `t2i.backends.base`'s:
regions yes (a Canvas is drawn by `t2i.render.regional`), variations no.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image

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
from t2i.limits import MAX_HIRES_SCALE, MAX_IMAGES, MAX_NAME_CHARS
from t2i.registry import ModelError, ResolvedModel
from t2i.render.empty_negative import empty_caption_embeds, empty_negative_steps, zero_negative_half
from t2i.types import GenerationRequest, GenerationResult, RequestError

# our sampler name -> (diffusers scheduler class, extra config, A1111 name)
SAMPLERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "euler-trailing": ("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}, "Euler"),
    "dpm++2m-karras": ("DPMSolverMultistepScheduler",
                       {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++", "solver_order": 2},
                       "DPM++ 2M Karras"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
}
REGION_MODES = ("omost", "couple", "off")  # t2i.render.regional's (a test keeps them equal; it imports torch)
REGION_TEXTS = ("omost", "own", "local")  # t2i.render.regional's too
EXCITE_FORM = "off, auto, user or comma-separated words of the prompt"
VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def _excite(value: Any) -> str:
    """Option excite normalised: "off" (also "", "0", 0 and false), "auto", "user" or the words as given."""
    if value is False or (type(value) is int and value == 0):
        return "off"
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\x00" in value:
        raise ValueError("")
    return "off" if value.strip() in ("", "0", "off") else value


def _variant(value: Any) -> str:
    if not isinstance(value, str) or not VARIANT.fullmatch(value):
        raise ValueError("")
    return value


SCHEMA = make_schema(
    device_spec(),
    OptionSpec("dtype", "choice", "float16 on CUDA by default, float32 on the CPU", when="load",
               choices=("float32", "float16", "bfloat16")),
    OptionSpec("cpu_offload", "bool", "keep the modules on the CPU and move each to CUDA when it runs", when="load"),
    OptionSpec("vae_tiling", "bool", "decode large images tile by tile", when="load"),
    OptionSpec("attention_slicing", "bool", "compute attention in slices (less memory)", when="load"),
    OptionSpec("config", "str", "the diffusers SDXL folder a single-file checkpoint takes its configuration from",
               when="load", file=True, form="a local folder", check=check_path),
    OptionSpec("variant", "str", "the weights variant of a hub model, e.g. fp16", when="load",
               form="a variant name like fp16 (letters, digits, _ . -)", check=_variant),
    OptionSpec("batch_size", "int", "images per pipeline call", lo=1, hi=MAX_IMAGES),
    OptionSpec("region_mode", "choice", "how a Canvas's regions attend", choices=REGION_MODES),
    OptionSpec("region_text", "choice", "what a Canvas's regions read", choices=REGION_TEXTS),
    OptionSpec("init_strength", "float", "start from the Canvas's colour image at this strength", lo=0.0, hi=1.0,
               lo_open=True),
    OptionSpec("hires_scale", "float", "hi-res fix: upscale by this and denoise again (0 or 1: off)", lo=1.0,
               hi=MAX_HIRES_SCALE, also=(0.0,)),
    OptionSpec("hires_strength", "float", "the hi-res pass's denoising strength (default 0.5)", lo=0.0, hi=1.0,
               lo_open=True),
    OptionSpec("guidance_rescale", "float", "rescale the guided prediction (0.7 against over-exposure)", lo=0.0,
               hi=1.0),
    OptionSpec("excite", "str", "Attend-and-Excite the subjects", form=EXCITE_FORM, check=_excite),
    OptionSpec("excite_scale", "float", "Attend-and-Excite step size (default 20)", lo=0.0, hi=1000.0, lo_open=True),
    OptionSpec("excite_factor", "int", "Attend-and-Excite attention level: the latent's size over the map's "
               "(default 2)", lo=1, hi=64),
    OptionSpec("excite_refine", "int", "Attend-and-Excite refinement iterations (default 20)", lo=0, hi=1000),
    OptionSpec("empty_negative", "float", "fraction of the steps guided against the empty caption", lo=0.0,
               hi=1.0),
)
BLACK_LEVEL = 2.0 / 255  # an image whose every pixel is below this counts as black


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _dtype(options: Mapping[str, Any], device: str):
    import torch

    name = options.get("dtype") or ("float16" if device.startswith("cuda") else "float32")
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise ModelError(f"dtype must be one of {', '.join(table)}, got {name!r}")
    if device == "cpu" and name == "float16":
        raise ModelError("float16 on CPU is slow and unsupported by several kernels; use float32 (the default)")
    return table[name]


def _load_pipeline(resolved: ResolvedModel, options: Mapping[str, Any], dtype):
    from diffusers import StableDiffusionXLPipeline

    loc = resolved.location
    try:
        if loc is not None and loc.is_file():
            config = options.get("config")
            if not config:
                raise ModelError(f"{loc}: a single-file checkpoint needs the folder of a matching diffusers SDXL "
                                 "model for its configuration: --option config=FOLDER")
            if not os.path.isdir(str(config)):
                raise ModelError(f"config {config!r} is not a local folder")
            return StableDiffusionXLPipeline.from_single_file(str(loc), config=str(config), local_files_only=True,
                                                             dtype=dtype)
        if options.get("config"):
            raise ModelError(f"option config is for single-file checkpoints; {loc or resolved.spec.source} is a "
                             "diffusers folder with its own configuration")
        if loc is not None and options.get("variant"):
            raise ModelError(f"option variant picks the weights of a hub model; {loc} is a local folder")
        source = str(loc) if loc is not None else resolved.spec.source
        kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
        if loc is None:
            kwargs["local_files_only"] = _offline()
            if options.get("variant"):
                kwargs["variant"] = options["variant"]
        return StableDiffusionXLPipeline.from_pretrained(source, **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        where = str(loc) if loc is not None else resolved.spec.source
        if loc is None and _offline():
            raise ModelError(f"{where}: the weights are not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                             f"set. With network: `huggingface-cli download {where}`; or pass a local folder.") from e
        raise ModelError(f"{where}: cannot load an SDXL pipeline ({type(e).__name__}: {str(e)[:300]})") from e


@dataclass
class SDXLBackend:
    """A loaded SDXL pipeline and the settings it was loaded with."""

    schema: ClassVar[Schema] = SCHEMA
    pipe: Any
    resolved: ResolvedModel
    device: str
    options: dict[str, Any]
    _img2img_pipe: Any = field(default=None, repr=False)  # made on first use, sharing the modules

    @classmethod
    def load(cls, resolved: ResolvedModel, options: Mapping[str, Any]) -> SDXLBackend:
        """Load the model named by `resolved` (no network when HF_HUB_OFFLINE is set)."""
        import torch

        options = validate_at_load(SCHEMA, options, "SDXL")
        device = resolve_device(options.get("device", "auto"))
        dtype = _dtype(options, device)
        pipe = _load_pipeline(resolved, options, dtype)
        # float16: decode in float32 (no NaN/black images).  float32: nothing to upcast, and leaving the flag on
        # makes the img2img (hi-res) pass recast the VAE on every call, which diffusers warns about each time.
        pipe.vae.register_to_config(force_upcast=dtype == torch.float16)
        if options.get("cpu_offload"):
            if not device.startswith("cuda"):
                raise ModelError("cpu_offload needs a CUDA device")
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
        if options.get("vae_tiling"):
            pipe.vae.enable_tiling()
        if options.get("attention_slicing"):
            pipe.enable_attention_slicing()
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, resolved, device, dict(options))

    @property
    def supports_regions(self) -> bool:
        """A Canvas is drawn region by region (`t2i.render.regional`)."""
        return True

    @property
    def supports_variations(self) -> bool:
        return False

    def _same_device(self, name: str, asked: Any, loaded: Any) -> bool:
        """A call's device or dtype option names what this model runs on (device auto or its resolved name)."""
        if name == "dtype":
            return asked == str(self.pipe.unet.dtype).removeprefix("torch.")
        return name == "device" and same_device(self.device, asked)

    # ------------------------------------------------------------------ helpers

    def size_multiple(self) -> int:
        """Width and height must be multiples of this (VAE factor x U-Net down-sampling)."""
        vae_factor = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)
        return vae_factor * 2 ** (len(self.pipe.unet.config.block_out_channels) - 1)

    def native_size(self) -> int:
        """The side the model was trained at (U-Net sample size x VAE factor)."""
        vae_factor = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)
        return int(self.pipe.unet.config.sample_size) * vae_factor

    def _scheduler(self, name: str):
        import diffusers

        if name not in SAMPLERS:
            raise RequestError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
        cls_name, extra, _ = SAMPLERS[name]
        return getattr(diffusers, cls_name).from_config(self.pipe.scheduler.config, **extra)

    def truncation_warning(self, prompt: str) -> str | None:
        """A warning when `prompt` is longer than the text encoder's 77 tokens, naming what is dropped."""
        tok = self.pipe.tokenizer
        ids = tok(prompt, truncation=False).input_ids
        if len(ids) <= tok.model_max_length:
            return None
        dropped = tok.decode(ids[tok.model_max_length - 1:-1])
        return (f"prompt is {len(ids)} tokens; the text encoder reads {tok.model_max_length}, "
                f"so this is cut: {dropped!r}")

    # ------------------------------------------------------------------ the contract

    def generate(self, request: GenerationRequest, callback: Callback | None = None,
                 cancel: CancelToken | None = None) -> GenerationResult:
        """Generate request.n_images images; image k from seed request.seed + k (`t2i.backends.base`'s contract:
        `callback(done, total)` after every step of every pass, `cancel` checked at each)."""
        import torch

        m = self.size_multiple()
        checked = checked_request(request, "SDXL", size_multiple=m, native_size=self.native_size(), regions=True)
        request = checked.request
        opts = call_options(SCHEMA, self.options, request.model_options, "SDXL", self._same_device)
        layout = None
        if request.compose.enabled:
            from t2i.compose import parse_canvas

            layout = parse_canvas(request.compose.program).process()  # parsed, never executed
        self.pipe.scheduler = self._scheduler(request.sampler or "euler")
        negative = request.negative_prompt or None  # None: SDXL's zero embedding for "no negative prompt"
        conjuncts = self._conjuncts(checked.conjuncts, opts, layout is not None)  # None: not an AND prompt
        texts = [c.text for c in conjuncts] if conjuncts else [request.prompt]
        warnings = [w for w in map(self.truncation_warning, texts) if w] if layout is None else []
        passes = _passes(request, opts, layout is not None, m)
        # image-steps of the call: every pass's denoising steps, for every image
        steps = Steps(sum(n for n, _ in passes) * request.n_images, callback, cancel)

        exciter = self._exciter(request, opts, layout is not None, warnings)
        # guide against the empty caption for the first steps (`t2i.render.empty_negative`): plain prompts with
        # no negative prompt, on a pipeline whose negative branch is otherwise zeros
        empty_steps = empty_negative_steps(opts.get("empty_negative", 0.0), int(request.steps))
        if (negative is not None or layout is not None or conjuncts is not None or request.guidance <= 1
                or not getattr(self.pipe.config, "force_zeros_for_empty_prompt", True)):
            empty_steps = 0

        def on_step(pipe, i, t, kwargs):  # diffusers' callback_on_step_end, after every step of every pass
            if exciter is not None and pipe is self.pipe:  # text-to-image only (not a hi-res pass)
                kwargs = exciter.step(pipe, i, kwargs)
            if empty_steps and pipe is self.pipe and i + 1 == empty_steps:
                kwargs = zero_negative_half(kwargs, len(ks))
            steps.advance(len(ks))  # one step of every image in the batch; raises Cancelled out of the pipeline
            return kwargs

        def conjunct_step(i: int) -> bool:  # the composable loop's callback (Cancelled stops it too)
            steps.advance(len(ks))
            return True

        steps.check()  # a call cancelled before it starts draws nothing
        images, seeds, per_image = [], [], []
        batch = opts.get("batch_size", 1)
        mode, text = opts.get("region_mode", "omost"), opts.get("region_text", "omost")
        for start in range(0, request.n_images, batch):
            ks = list(range(start, min(start + batch, request.n_images)))
            steps.check()  # between the batches of the call
            gens = [torch.Generator("cpu").manual_seed(request.seed + k) for k in ks]
            t0 = time.perf_counter()
            run = {"num_inference_steps": request.steps, "guidance_scale": request.guidance,
                   "generator": gens, "output_type": "np", "callback_on_step_end": on_step}
            if exciter is not None or empty_steps:
                run["callback_on_step_end_tensor_inputs"] = ["latents", "prompt_embeds", "add_text_embeds",
                                                             "add_time_ids"]
            if opts.get("guidance_rescale"):  # Lin et al. 2024 Sec. 3.4: 0.7 against over-exposure at zero SNR
                run["guidance_rescale"] = float(opts["guidance_rescale"])
            if layout is not None:
                cfg = request.guidance > 1 and self.pipe.unet.config.time_cond_proj_dim is None
                from t2i.render.regional import encode_layout

                try:
                    extra, token_region = encode_layout(self.pipe, layout, negative, len(ks), cfg, text)
                except ValueError as e:
                    raise RequestError(f"regional rendering: {e}") from e
            else:
                cfg, token_region = False, None
                if empty_steps:
                    extra = empty_caption_embeds(self.pipe, request.prompt, len(ks))
                else:
                    extra = {"prompt": request.prompt, "negative_prompt": negative, "num_images_per_prompt": len(ks)}
            if conjuncts is not None:  # composable diffusion: its own loop, one pass
                from t2i.render.composable import sample_conjunction

                out = sample_conjunction(self.pipe, conjuncts, negative, int(request.height), int(request.width),
                                         int(request.steps), float(request.guidance), gens,
                                         conjunct_step, float(opts.get("guidance_rescale") or 0.0))
                if out is None:  # conjunct_step goes on until Cancelled: the loop always draws
                    raise RuntimeError("the composable loop stopped without a cancel")
                self._collect(out, ks, request.seed, time.perf_counter() - t0, images, seeds, per_image, warnings)
                continue
            start_image = None
            if opts.get("init_strength"):  # Omost: start from the canvas's coarse colour image
                colours = Image.fromarray(layout.color_image()).resize((request.width, request.height), Image.BICUBIC)
                start_image = [colours] * len(ks)
            out = None
            for (_, strength), (height, width) in zip(passes, _pass_sizes(request, opts, m), strict=True):
                if out is not None:  # hi-res fix: upscale the last pass's images, then denoise them partly
                    steps.check()  # between the passes
                    start_image = [Image.fromarray(_to_uint8(a)).resize((width, height), Image.LANCZOS) for a in out]
                out = self._pass(run, extra, layout, token_region, cfg, mode, text, height, width,
                                 start_image if strength < 1 else None, strength)
            self._collect(out, ks, request.seed, time.perf_counter() - t0, images, seeds, per_image, warnings)
        return GenerationResult(request=request, images=images, seeds=seeds, prompt_used=request.prompt,
                                negative_prompt_used=request.negative_prompt or "",
                                canvas_program=request.compose.program if layout is not None else None,
                                timings={"generate": float(sum(per_image)), "per_image": float(np.mean(per_image))},
                                warnings=warnings, device=self.device,
                                dtype=str(self.pipe.unet.dtype).removeprefix("torch."))

    @staticmethod
    def _collect(out: np.ndarray, ks: list[int], seed: int, seconds: float, images: list, seeds: list,
                 per_image: list, warnings: list[str]) -> None:
        """Append one batch's images (b, H, W, 3) floats, their seeds, times and NaN/black warnings."""
        per_image += [seconds / len(ks)] * len(ks)
        for k, arr in zip(ks, out, strict=True):
            warnings += _check_image(arr, seed + k)
            images.append(Image.fromarray(_to_uint8(arr)))
            seeds.append(seed + k)

    def _conjuncts(self, conjuncts: list | None, opts: Mapping[str, Any], has_layout: bool) -> list | None:
        """The prompt's AND conjuncts (composable diffusion; `checked_request` parsed them), or None for a prompt
        without AND; settings that have no meaning for a conjunction are refused."""
        if conjuncts is None:
            return None
        clash = [name for name, on in (("--compose (a Canvas)", has_layout),
                                       ("excite", opts.get("excite", "off") != "off"),
                                       ("hires_scale", _hires_scale(opts) is not None),
                                       ("init_strength", opts.get("init_strength") is not None)) if on]
        if clash:
            raise RequestError(f"a prompt with AND (composable diffusion) cannot be combined with {', '.join(clash)}; "
                               "drop the AND or the setting")
        if self.pipe.unet.config.time_cond_proj_dim is not None:
            raise RequestError("this U-Net is guidance-distilled (it takes the guidance scale as an input); AND needs "
                               "classifier-free guidance")
        return conjuncts

    def _pass(self, run: dict[str, Any], extra: dict[str, Any], layout: Any, token_region: Any, cfg: bool, mode: str,
              text: str, height: int, width: int, image: list[Image.Image] | None, strength: float) -> np.ndarray:
        """One denoising pass -> (b, H, W, 3) floats in [0, 1]: text-to-image, or image-to-image from
        `image` at `strength`; with the layout's regional processors installed when there is a layout."""
        if image is None:
            pipe, kwargs = self.pipe, {**run, **extra, "height": height, "width": width}
        else:
            pipe, kwargs = self._img2img(), {**run, **extra, "image": image, "strength": strength}
        if layout is None:
            return pipe(**kwargs).images
        from t2i.render.regional import regional_processors

        try:
            with regional_processors(self.pipe, layout, token_region, height, width, cfg, mode, text):
                return pipe(**kwargs).images
        except ValueError as e:
            raise RequestError(f"regional rendering: {e}") from e

    def _exciter(self, request: GenerationRequest, opts: Mapping[str, Any], has_layout: bool,
                 warnings: list[str]) -> Any:
        """Attend-and-Excite for this request (option excite: comma-separated words of the prompt, auto for
        its shapes-world nouns, user for those of the user's prompt before presampling), or None when off."""
        words = opts.get("excite", "off")
        if words == "off":
            return None
        if has_layout:
            raise RequestError("excite works on plain prompts; a Canvas is drawn by the regional renderer")
        from t2i.render.excite import Exciter, ExciteSettings, no_subject_warning, shape_words, subject_tokens

        # user: the user's own nouns; generate() writes them out when presampling changed the prompt
        if words in ("auto", "user"):
            from t2i.world.vocab import SHAPES

            chosen = shape_words(request.prompt, SHAPES)
        else:
            chosen = [w.strip() for w in str(words).split(",") if w.strip()]
        if not chosen:
            warnings.append(no_subject_warning(words))
            return None
        try:
            tokens = subject_tokens(self.pipe.tokenizer, request.prompt, chosen)
            settings = ExciteSettings(tokens, scale=opts.get("excite_scale", 20.0), factor=opts.get("excite_factor", 2),
                                      refine_iters=opts.get("excite_refine", 20))
        except ValueError as e:
            raise RequestError(str(e)) from e
        kinds = self.pipe.unet.config.down_block_types  # level j is the latent's size / 2**j
        levels = sorted(2**j for j, kind in enumerate(kinds) if "CrossAttn" in kind)
        if settings.factor not in levels:
            raise RequestError(f"excite_factor {settings.factor}: this U-Net has cross-attention at factors "
                               f"{', '.join(map(str, levels))} (the latent's size over the attention map's)")
        last = len(self.pipe.tokenizer(request.prompt, truncation=True).input_ids) - 1
        f = self.pipe.vae_scale_factor
        return Exciter(settings, last, (int(request.height) // f, int(request.width) // f), int(request.steps))

    def _img2img(self):
        """The image-to-image pipeline over the same modules (no copy of the weights)."""
        from diffusers import StableDiffusionXLImg2ImgPipeline

        if self._img2img_pipe is None:
            self._img2img_pipe = StableDiffusionXLImg2ImgPipeline.from_pipe(self.pipe)
            self._img2img_pipe.set_progress_bar_config(disable=True)
        return self._img2img_pipe



def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return (np.nan_to_num(arr).clip(0, 1) * 255).round().astype(np.uint8)


def _hires_scale(opts: Mapping[str, Any]) -> float | None:
    """The hi-res fix's upscale factor (validated options), or None when off (absent, 0 or 1)."""
    scale = opts.get("hires_scale")
    return None if scale in (None, 0, 1) else scale


def _passes(request: GenerationRequest, opts: Mapping[str, Any], has_layout: bool, m: int) -> list[tuple[int, float]]:
    """[(denoising steps, strength)] of each pass: the first (from noise, or from the canvas's colour image
    at init_strength), then the hi-res fix's (hires_strength, default 0.5) when hires_scale is set.
    Image-to-image runs int(steps * strength) of the schedule's steps, as diffusers does."""
    steps = int(request.steps)
    first = 1.0
    if opts.get("init_strength") is not None:
        if not has_layout:
            raise RequestError("init_strength starts from the canvas's colour image: it needs --compose")
        first = opts["init_strength"]
    passes = [(steps if first == 1 else int(steps * first), first)]
    if _hires_scale(opts) is not None:
        strength = opts.get("hires_strength", 0.5)
        passes.append((int(steps * strength), strength))
    for n, strength in passes:
        if n < 1:
            raise RequestError(f"strength {strength} leaves no denoising step of {steps}; raise steps or strength")
    return passes


def _pass_sizes(request: GenerationRequest, opts: Mapping[str, Any], m: int) -> list[tuple[int, int]]:
    """(height, width) of each pass; the hi-res pass's sides are rounded to the model's multiple m."""
    sizes = [(int(request.height), int(request.width))]
    scale = _hires_scale(opts)
    if scale is not None:
        sizes.append(tuple(max(m, round(side * scale / m) * m) for side in sizes[0]))
    return sizes


def _check_image(arr: np.ndarray, seed: int) -> list[str]:
    """Warnings for NaN or all-black decoded images (the float16 VAE failure)."""
    if np.isnan(arr).any():
        return [f"image with seed {seed} has NaN pixels (set to black): a float16 VAE overflow? "
                "try --option dtype=float32"]
    if float(np.nan_to_num(arr).max()) < BLACK_LEVEL:
        return [f"image with seed {seed} is all black"]
    return []
