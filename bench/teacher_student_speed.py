"""A teacher and its KOALA student side by side: one U-Net forward and a whole image, on this machine.

    python bench/teacher_student_speed.py --teacher shapes-xl --student shapes-koala
    python bench/teacher_student_speed.py --teacher MODEL --recipe koala-700m   (student built, random init)
    python bench/teacher_student_speed.py --smoke   (shapes-xl and shapes-koala, 2 calls, 2-step images)

Both go through the t2i backend (registered names or model folders).  U-Net forward: batch 2 (the
classifier-free guidance pair), the model's default size, a fixed timestep and random inputs of the right
shapes.  Whole image: `t2i generate` with the model's defaults and a fixed seed.  Calls alternate between
the two so machine noise hits both alike; prints medians and the student/teacher ratios (KOALA's goal:
U-Net latency <= 0.6x).  With --recipe, the student is built from the teacher by that recipe (weights
copied from the kept blocks), which measures speed before any distillation run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from t2i.backends import default_registry
from t2i.generate import generate
from t2i.types import ComposeOptions, GenerationRequest


def unet_call(pipe, size: int) -> Callable[[], None]:
    """One no-grad forward of pipe's U-Net on random inputs of the shapes an image of `size` gives."""
    unet, g = pipe.unet, torch.Generator().manual_seed(0)
    side = size // pipe.vae_scale_factor
    x = torch.randn(2, unet.config.in_channels, side, side, generator=g)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    pooled = pipe.text_encoder_2.config.projection_dim
    added = {"text_embeds": torch.randn(2, pooled, generator=g), "time_ids": torch.ones(2, 6)}
    t = torch.tensor([500, 500])

    @torch.no_grad()
    def call() -> None:
        unet(x, t, ctx, added_cond_kwargs=added)

    return call


def median_pair(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, float]:
    a()
    b()  # warm-up both
    ta, tb = [], []
    for _ in range(repeats):
        for fn, acc in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--student")
    group.add_argument("--recipe", choices=["koala-1b", "koala-700m"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--image-repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, help="steps of the whole image (default: the teacher's)")
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: shapes-xl against shapes-koala unless given, 2 calls, 2-step images")
    args = ap.parse_args()
    if args.smoke:
        args.repeats, args.image_repeats, args.steps = 2, 1, 2
        if not (args.student or args.recipe):
            args.teacher, args.student = args.teacher or "shapes-xl", "shapes-koala"
    if not args.teacher or not (args.student or args.recipe):
        ap.error("give --teacher and one of --student / --recipe")
    registry = default_registry()
    t_resolved, teacher = registry.load(args.teacher)
    with tempfile.TemporaryDirectory() as tmp:
        student_name = args.student or save_recipe_student(teacher.pipe, args.recipe, Path(tmp) / "student")
        _, student = registry.load(student_name)
        label = args.student or f"{args.recipe} of {args.teacher} (not distilled)"
        d = {**t_resolved.spec.defaults, **({"steps": args.steps} if args.steps else {})}  # the same for both
        size = int(d.get("width", 1024))
        params = [sum(p.numel() for p in b.pipe.unet.parameters()) for b in (teacher, student)]
        u_t, u_s = median_pair(unet_call(teacher.pipe, size), unet_call(student.pipe, size), args.repeats)

        def image(backend, name: str) -> Callable[[], None]:
            request = GenerationRequest("a red circle above a blue square", model=name, seed=1, width=size,
                                        height=size, steps=d.get("steps"), guidance=d.get("guidance"),
                                        sampler=d.get("sampler"),
                                        model_options={"empty_negative": 0},  # the same guidance for both
                                        compose=ComposeOptions(enabled=False))  # one plain pass for both
            return lambda: generate(request, registry, backend=backend)

        i_t, i_s = median_pair(image(teacher, args.teacher), image(student, student_name), args.image_repeats)
    print(f"teacher {args.teacher}: U-Net {params[0]:,} parameters")
    print(f"student {label}: U-Net {params[1]:,} parameters ({params[1] / params[0]:.2f}x)")
    print(f"U-Net forward (batch 2, {size}x{size}, {torch.get_num_threads()} threads, median of {args.repeats}): "
          f"teacher {u_t * 1000:.1f} ms, student {u_s * 1000:.1f} ms, ratio {u_s / u_t:.2f}")
    print(f"whole image ({d.get('steps')} steps, median of {args.image_repeats}): teacher {i_t:.3f} s, "
          f"student {i_s:.3f} s, ratio {i_s / i_t:.2f}")


def save_recipe_student(pipe, recipe: str, out: Path) -> str:
    """The teacher's pipeline with a `recipe` student U-Net (kept blocks copied), saved to `out`."""
    from diffusers import StableDiffusionXLPipeline

    from t2i.unet.student import build_student, koala_recipe

    unet = build_student(pipe.unet, koala_recipe(recipe, pipe.unet.config))[0]
    StableDiffusionXLPipeline(**{**pipe.components, "unet": unet}).save_pretrained(out)
    return str(out)


if __name__ == "__main__":
    main()
