"""The VQGAN alone on shapes world: PSNR of reconstructions and whether the detector finds the same objects.

    python experiments/vqgan_reconstruction.py --model FOLDER [--n 500] [--seed 4242]
    python experiments/vqgan_reconstruction.py --work runs/paella-tiny      (a recipe's work folder)
    python experiments/vqgan_reconstruction.py --model FOLDER --shape star  (one-object scenes of that shape)
    python experiments/vqgan_reconstruction.py --model FOLDER --shape star --versus circle  (do their codes differ?)
    python experiments/vqgan_reconstruction.py --model FOLDER --misses      (what the scenes that differ lost)
    python experiments/vqgan_reconstruction.py --smoke    (shipped paella-tiny, 3 scenes, --misses: seconds)

Renders n seeded scenes at 64x64 (or --size), encodes them to tokens and decodes; prints the mean PSNR (dB) and the
fraction of scenes whose detected (shape, colour) multiset is the same in render and reconstruction.
With --shape, every scene holds one object of that shape (random colour, place and area), and it also prints
in how many the detector reads that shape in the render and in the reconstruction; with --versus, in how many
of the tokens each scene's codes differ from those of the same scene with the other shape.
--misses lists, for the scenes whose detections differ, what the render had and the reconstruction did not
(lost) and the reverse (found), most common first.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from t2i.paella.checkpoints import load_strict, read_state_dict
from t2i.paella.vqgan import VQGANConfig, VQModel
from t2i.train.paella_tiny import load_work_vqgan
from t2i.world.detector import detect
from t2i.world.draw import render_scene
from t2i.world.scene import SHAPES, Scene, sample_scene


def load(args: argparse.Namespace) -> VQModel:
    if args.model:
        folder = Path(args.model) / "vqgan"
        cfg = json.loads((folder / "config.json").read_text())
        path = folder / "model.safetensors"
    else:
        return load_work_vqgan(Path(args.work))  # the decoder-stage VQGAN when the run has one
    vq = VQModel(VQGANConfig.from_dict(cfg))
    load_strict(vq, read_state_dict(path), "vqgan")
    return vq.eval()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--work")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--shape", choices=SHAPES, help="one-object scenes of this shape")
    ap.add_argument("--versus", choices=SHAPES, help="with --shape: count the tokens that differ from this shape's")
    ap.add_argument("--misses", action="store_true", help="list what the scenes that differ lost and found")
    ap.add_argument("--size", type=int, default=64, help="render side in pixels (a multiple of 4)")
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: shipped paella-tiny unless given, 3 scenes")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.misses = 3, True
        if not (args.model or args.work):
            from t2i.backends import default_registry

            args.model = str(default_registry().resolve("paella-tiny").location)
    if bool(args.model) == bool(args.work):
        raise SystemExit("give --model FOLDER or --work DIR")
    if args.versus and not args.shape:
        raise SystemExit("--versus compares with --shape's scenes: give --shape too")
    vq = load(args)
    rng = random.Random(args.seed)
    psnrs, same, read, differ, misses = [], 0, [0, 0], [], Counter()

    def pixels(scene: Scene) -> tuple[np.ndarray, torch.Tensor]:
        img = np.asarray(render_scene(scene, args.size), dtype=np.float32) / 255
        return img, torch.from_numpy(img).permute(2, 0, 1)[None]

    for _ in range(args.n):
        scene = sample_scene(rng, 1 if args.shape else None)
        if args.shape:
            scene = replace(scene, objects=(replace(scene.objects[0], shape=args.shape),))
        img, x = pixels(scene)
        tokens = vq.encode(x)
        rec = vq.decode(tokens)[0].permute(1, 2, 0).numpy()
        if args.versus:
            other = vq.encode(pixels(replace(scene, objects=(replace(scene.objects[0], shape=args.versus),)))[1])
            differ.append(int((other != tokens).sum()))
        mse = float(((rec - img) ** 2).mean())
        psnrs.append(10 * np.log10(1 / max(mse, 1e-10)))
        key = lambda dets: sorted((d.shape, d.color) for d in dets)  # noqa: E731
        found = detect((img * 255).round().astype(np.uint8)), detect((rec * 255).clip(0, 255).round().astype(np.uint8))
        a, b = Counter(key(found[0])), Counter(key(found[1]))
        same += a == b
        if a != b:
            misses[(tuple(sorted((a - b).elements())), tuple(sorted((b - a).elements())))] += 1
        for i, dets in enumerate(found):
            read[i] += any(d.shape == args.shape for d in dets)
    print(f"{args.n} scenes: PSNR {np.mean(psnrs):.2f} dB (min {np.min(psnrs):.2f}), "
          f"same objects detected {same / args.n:.3f}")
    if args.shape:
        print(f"a {args.shape} read in {read[0]} renders and {read[1]} reconstructions")
    if args.versus:
        print(f"tokens that differ from the same scene's {args.versus} (of {tokens.numel()}): mean "
              f"{np.mean(differ):.1f}, min {min(differ)}, max {max(differ)}")
    if args.misses:
        for (lost, found_only), count in misses.most_common():
            print(f"{count:4d}  lost {', '.join(' '.join(o[::-1]) for o in lost) or '-'};  "
                  f"found {', '.join(' '.join(o[::-1]) for o in found_only) or '-'}")


if __name__ == "__main__":
    main()
