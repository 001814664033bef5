"""The suite score a model could reach at best: its autoencoder's reconstructions of the suite's own scenes.

    python experiments/autoencoder_ceiling.py --sdxl src/t2i/weights/shapes-xl --out runs/ceiling-shapes-xl
    python experiments/autoencoder_ceiling.py --vqgan-work runs/paella-tiny-v2 --out runs/ceiling-paella
    python experiments/autoencoder_ceiling.py --smoke   (shipped shapes-xl, one line a task, a temporary folder)

Every suite line's ground-truth scene is rendered (64x64), encoded and decoded by the model's VAE (SDXL
folder: posterior mean) or VQGAN (tokens), and both the renders and the reconstructions are scored by
the suite's detector. A generated image can only be as good as a decoded latent, so the reconstruction
column is a ceiling on what the U-Net or token model can score; the render column checks the scorer.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i.world.suite import SuiteLine, build_suite, builtin_suite, read_suite, render_suite, score_folder


def _sdxl_roundtrip(folder: Path):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()

    def roundtrip(x: torch.Tensor) -> torch.Tensor:  # (1, 3, H, W) in [0, 1] -> same
        return (vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) / 2

    return roundtrip


def _vqgan_roundtrip(work: Path):
    from t2i.train.paella_tiny import load_work_vqgan

    vq = load_work_vqgan(work)  # the decoder-stage VQGAN when the run has one
    return lambda x: vq.decode(vq.encode(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdxl", type=Path, help="a diffusers SDXL folder (its vae/)")
    ap.add_argument("--vqgan-work", type=Path, help="a paella-tiny work folder (its decoder-stage VQGAN if any)")
    ap.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: shipped shapes-xl unless given, one suite line a task, a temporary --out")
    args = ap.parse_args()
    if args.smoke and not (args.sdxl or args.vqgan_work):
        from t2i.backends import default_registry

        args.sdxl = default_registry().resolve("shapes-xl").location
    if bool(args.sdxl) == bool(args.vqgan_work):
        raise SystemExit("give --sdxl FOLDER or --vqgan-work DIR")
    if args.out is None and not args.smoke:
        raise SystemExit("give --out DIR (renders and reconstructions are written there)")
    lines = build_suite(1, 0) if args.smoke else read_suite(args.suite) if args.suite else builtin_suite()
    with tempfile.TemporaryDirectory() as tmp:
        score_reconstructions(args, lines, args.out or Path(tmp))


@torch.no_grad()
def score_reconstructions(args: argparse.Namespace, lines: list[SuiteLine], out: Path) -> None:
    roundtrip = _sdxl_roundtrip(args.sdxl) if args.sdxl else _vqgan_roundtrip(args.vqgan_work)
    renders, recs = out / "renders", out / "reconstructions"
    render_suite(lines, renders)
    psnrs = []
    for path in sorted(renders.glob("*/samples/*.png")):
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        x = torch.from_numpy(img).permute(2, 0, 1)[None]
        rec = roundtrip(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        psnrs.append(10 * np.log10(1 / max(float(((rec - img) ** 2).mean()), 1e-10)))
        target = recs / path.relative_to(renders)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rec * 255).round().astype(np.uint8)).save(target)
    truth, ceiling = score_folder(renders, lines), score_folder(recs, lines)
    print(f"{args.sdxl or args.vqgan_work}: {len(lines)} suite scenes, reconstruction PSNR {np.mean(psnrs):.2f} dB")
    print("| task | renders | reconstructions |")
    print("|---|---|---|")
    for task in truth.per_task:
        print(f"| {task} | {truth.per_task[task]:.3f} | {ceiling.per_task[task]:.3f} |")
    print(f"| overall | {truth.overall:.3f} | {ceiling.overall:.3f} |")


if __name__ == "__main__":
    main()
