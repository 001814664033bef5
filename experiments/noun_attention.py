"""Where a shapes-xl model's noun tokens look: the share of each shape noun's cross-attention that falls inside
its objects, per U-Net attention level, on held-out scenes (TokenCompose's grounding measure, Wang et al. 2024).

    python experiments/noun_attention.py --sdxl src/t2i/weights/shapes-xl [--sdxl OTHER_FOLDER ...]
    python experiments/noun_attention.py --smoke      (shipped shapes-xl, 2 scenes, one timestep: seconds)

For every scene a fresh training-style caption is drawn, the latent (VAE posterior mean) is noised at fixed
timesteps (seeded) and the U-Net run once; each shape noun's attention map (heads averaged) is compared with
the mask of its objects at the map's resolution. "inside" = sum(A * M) / sum(A), averaged over nouns and layers;
"area" = the masks' mean, what attention spread evenly over the image would score. A model whose nouns carry
where their objects are scores well above "area".
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def measure(folder: Path, latents_of, scenes: list[dict], images: torch.Tensor, timesteps: list[int],
            batch: int, seed: int) -> dict[tuple[int, int], tuple[float, float]]:
    """{(timestep, map side): (inside, area)} for the SDXL folder's U-Net and text encoders."""
    from diffusers import StableDiffusionXLPipeline

    from t2i.render.excite import CaptureProcessor
    from t2i.train.diffusion import alphas_cumprod, noised
    from t2i.train.grounding import grounded_pairs, token_targets
    from t2i.train.shapes_xl import TIME_IDS, encode_text
    from t2i.train.tokenizer import MAX_LENGTH
    from t2i.train.world_data import training_caption

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    x0 = latents_of(pipe.vae, images)  # (N, 4, 16, 16)
    side = x0.shape[-1]
    capture = CaptureProcessor({(side >> k) ** 2 for k in range(4)})
    unet = pipe.unet
    unet.set_attn_processor({k: capture if k.endswith("attn2.processor") else p
                             for k, p in unet.attn_processors.items()})
    alphas = alphas_cumprod(dict(pipe.scheduler.config))
    rng = random.Random(seed)
    prompts = [training_caption(s, rng, 0.25, 0.4) for s in scenes]
    sums: dict[tuple[int, int], list[float]] = {}
    for lo in range(0, len(scenes), batch):
        rows = slice(lo, lo + batch)
        masks, grounded = token_targets(pipe.tokenizer, prompts[rows], scenes[rows], side, MAX_LENGTH)
        sel = grounded.flatten()
        with torch.no_grad():
            emb, pooled = encode_text(pipe.tokenizer, pipe.text_encoder, pipe.text_encoder_2, prompts[rows])
            b = emb.shape[0]
            for t in timesteps:
                g = torch.Generator().manual_seed(seed * 1000 + t + lo)
                noise = torch.randn(x0[rows].shape, generator=g)
                tt = torch.full((b,), t)
                capture.maps.clear()
                unet(noised(alphas, x0[rows], noise, tt), tt, emb,
                     added_cond_kwargs={"text_embeds": pooled,
                                        "time_ids": torch.tensor([TIME_IDS], dtype=torch.float32).expand(b, -1)})
                for a in capture.maps:  # (B, n, L)
                    s = int(round(a.shape[1] ** 0.5))
                    att, m = grounded_pairs(a, masks, sel)  # (G, n) each
                    inside = ((att * m).sum(1) / att.sum(1)).mean().item()
                    sums.setdefault((t, s), []).append(inside)
                    sums.setdefault((-1, s), []).append(m.mean().item())
    return {k: (float(np.mean(v)), float(np.mean(sums[(-1, k[1])]))) for k, v in sums.items() if k[0] >= 0}


def main() -> None:
    from t2i.train.world_data import world_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdxl", type=Path, action="append", help="a shapes-xl diffusers folder")
    ap.add_argument("--scenes", type=int, default=128)
    ap.add_argument("--timesteps", default="200,500,800")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1234, help="held-out scenes: not the training set's seed 0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: shipped shapes-xl unless given, 2 scenes, timestep 500, 1 thread")
    args = ap.parse_args()
    if args.smoke:
        args.scenes, args.timesteps, args.batch, args.threads = 2, "500", 2, 1
        if not args.sdxl:
            from t2i.backends import default_registry

            args.sdxl = [default_registry().resolve("shapes-xl").location]
    if not args.sdxl:
        ap.error("give --sdxl FOLDER (repeatable)")
    torch.set_num_threads(args.threads)
    timesteps = [int(t) for t in args.timesteps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        pixels, scenes = world_images(Path(tmp), args.scenes, args.seed, 64)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, 64, 64)

    def latents_of(vae, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return vae.encode(x).latent_dist.mean * vae.config.scaling_factor

    for folder in args.sdxl:
        res = measure(folder, latents_of, scenes, images, timesteps, args.batch, args.seed)
        sides = sorted({s for _, s in res}, reverse=True)
        print(f"\n{folder}: share of each shape noun's attention inside its objects ({args.scenes} scenes)")
        print("| timestep | " + " | ".join(f"{s}x{s} maps" for s in sides) + " |")
        print("|---|" + "---|" * len(sides))
        for t in timesteps:
            print(f"| {t} | " + " | ".join(f"{res[(t, s)][0]:.3f}" for s in sides) + " |")
        print("| area (even spread) | " + " | ".join(f"{res[(timesteps[0], s)][1]:.3f}" for s in sides) + " |")


if __name__ == "__main__":
    main()
