"""How close distilled students come to their teacher on held-out scenes: the U-Net output error.

    python experiments/student_fidelity.py --teacher shapes-xl --student shapes-koala --student runs/X/model
    python experiments/student_fidelity.py --smoke   (shapes-koala and shapes-xl itself, 2 scenes: seconds)

A distillation run's own loss figures are training-batch averages; this measures every student on the
same held-out inputs: shapes-world scenes of a seed the training set does not use (`--seed`), encoded by
the teacher's VAE, one caption each, noised at fixed timesteps with fixed noise.  For each student and
timestep it prints the output error relative to the teacher's output, mean((s - t)^2) / mean(t^2), and,
for every student after the first, the paired ratio of its per-input error to the first student's with
the standard error of the mean log ratio (the same inputs hit both, so machine and data noise cancel).
Conditional outputs only (the prompt's embeddings, pooled embedding kept), no guidance.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path

import torch

from t2i.backends import default_registry
from t2i.distill.recipe import load_teacher
from t2i.train.diffusion import alphas_cumprod, noised
from t2i.train.world_data import training_caption, world_images

TIMESTEPS = (100, 300, 500, 700, 900)


def load_student_unet(name: str, registry):
    """The U-Net of a registered model or a model folder, float32, eval mode."""
    from diffusers import UNet2DConditionModel

    location = registry.resolve(name).location
    if location is None or not (Path(location) / "unet").is_dir():
        raise SystemExit(f"{name}: not a local SDXL-layout folder with a unet/ inside")
    return UNet2DConditionModel.from_pretrained(Path(location) / "unet", torch_dtype=torch.float32).eval()


@torch.no_grad()
def held_out_inputs(pipe, n: int, seed: int, size: int, batch: int):
    """[(latents (b, 4, h, w), embeddings (b, 77, D), pooled (b, P))] for n fresh scenes of `seed`."""
    with tempfile.TemporaryDirectory() as tmp:
        images, scenes = world_images(Path(tmp), n, seed, size)
    rng = random.Random(seed)
    out = []
    for i in range(0, n, batch):
        x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1
        x0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        prompts = [training_caption(s, rng, 0.25, 0.4) for s in scenes[i:i + batch]]
        emb, _, pooled, _ = pipe.encode_prompt(prompts, device="cpu", num_images_per_prompt=1,
                                               do_classifier_free_guidance=False)
        out.append((x0, emb, pooled))
    return out


@torch.no_grad()
def output_errors(pipe, students: list, inputs, size: int, seed: int) -> dict[int, list[torch.Tensor]]:
    """{timestep: [per-input relative error (n,) of each student]}."""
    alphas = alphas_cumprod(dict(pipe.scheduler.config))
    g = torch.Generator().manual_seed(seed)
    errors: dict[int, list[list[torch.Tensor]]] = {t: [[] for _ in students] for t in TIMESTEPS}
    for x0, emb, pooled in inputs:
        b = x0.shape[0]
        added = {"text_embeds": pooled, "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * b,
                                                                 dtype=torch.float32)}
        for t_value in TIMESTEPS:
            t = torch.full((b,), t_value)
            xt = noised(alphas, x0, torch.randn(x0.shape, generator=g), t)
            want = pipe.unet(xt, t, emb, added_cond_kwargs=added).sample  # (b, 4, h, w)
            scale = want.pow(2).mean(dim=(1, 2, 3))  # (b,)
            for k, unet in enumerate(students):
                got = unet(xt, t, emb, added_cond_kwargs=added).sample
                errors[t_value][k].append((got - want).pow(2).mean(dim=(1, 2, 3)) / scale)
    return {t: [torch.cat(e) for e in per] for t, per in errors.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="shapes-xl")
    ap.add_argument("--student", action="append", help="registered name or model folder; repeat")
    ap.add_argument("--scenes", type=int, default=256)
    ap.add_argument("--seed", type=int, default=424242, help="the held-out scenes' seed (training used 0)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: 2 scenes, 1 thread; students shapes-koala "
                    "and the teacher itself (error 0) unless given")
    args = ap.parse_args()
    if args.smoke:
        args.scenes, args.batch, args.threads = 2, 2, 1
        args.student = args.student or ["shapes-koala", args.teacher]
    if not args.student:
        ap.error("give --student NAME_OR_FOLDER (repeatable)")
    if args.scenes < 2:
        raise SystemExit("--scenes must be at least 2 (a standard error needs two inputs)")
    torch.set_num_threads(args.threads)
    registry = default_registry()
    pipe = load_teacher(args.teacher, registry)
    size = int(registry.resolve(args.teacher).spec.defaults.get("width", 64))
    students = [load_student_unet(name, registry) for name in args.student]
    inputs = held_out_inputs(pipe, args.scenes, args.seed, size, args.batch)
    errors = output_errors(pipe, students, inputs, size, args.seed)
    print(f"teacher {args.teacher}; {args.scenes} held-out scenes (seed {args.seed}); "
          "relative output error mean((s-t)^2)/mean(t^2)")
    head = "| timestep | " + " | ".join(args.student) + " | " + " | ".join(
        f"{s} / {args.student[0]}" for s in args.student[1:]) + " |"
    print(head)
    print("|" + "---|" * (1 + 2 * len(args.student) - 1))
    rows = [(str(t), errors[t]) for t in TIMESTEPS]
    rows.append(("all", [torch.cat([errors[t][k] for t in TIMESTEPS]) for k in range(len(students))]))
    for label, per in rows:
        cells = [f"{float(e.mean()):.4f}" for e in per]
        for e in per[1:]:
            log_ratio = (e.clamp_min(1e-12) / per[0].clamp_min(1e-12)).log()  # paired, per input
            se = float(log_ratio.std()) / math.sqrt(len(log_ratio))
            cells.append(f"{float(e.mean() / per[0].mean()):.3f} (geo {math.exp(float(log_ratio.mean())):.3f}, "
                         f"se log {se:.3f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
