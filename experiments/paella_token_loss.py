"""How much a paella-tiny token model has learnt, without sampling: cross-entropy and accuracy on the replaced
tokens, per noise level, with each scene's own caption, the empty caption and another scene's.

    python experiments/paella_token_loss.py --model runs/paella-v3/model
    python experiments/paella_token_loss.py --smoke   (shipped paella-tiny, 4 scenes, 2 levels: seconds, for the tests)

The scenes are fresh (drawn from `--seed`, not the training set's), rendered at 64x64 and tokenised by the
pipeline's own VQGAN; their captions are drawn as in training (a quarter tags).  At t = 1 every token is
noise and the caption is all the model has: the gap between "own" and "empty" there is what the text
conditioning is worth.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from t2i.paella.pipeline import PaellaPipeline
from t2i.train.world_data import training_caption
from t2i.world.draw import render_scene
from t2i.world.scene import sample_scene


@torch.no_grad()
def replaced_token_scores(pipe: PaellaPipeline, tokens: torch.Tensor, captions: list[str], t: float,
                          g: torch.Generator, batch: int = 64) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the tokens replaced at noise level t, tokens (N, h, w)."""
    ce_sum, right, count = 0.0, 0.0, 0
    k = pipe.model.cfg.num_labels
    for i in range(0, len(tokens), batch):
        x = tokens[i:i + batch]
        replace = torch.rand(x.shape, generator=g) <= t
        noised = torch.where(replace, torch.randint(0, k, x.shape, generator=g), x)
        cond = pipe.condition(captions[i:i + batch])  # bytes, and CLIP text when the pipeline has a tower
        logits = pipe.model(noised, torch.full((len(x),), t), cond["byt5"], cond["clip"])  # (B, K, h, w)
        ce = F.cross_entropy(logits, x, reduction="none")
        ce_sum += float(ce[replace].sum())
        right += float((logits.argmax(1) == x)[replace].sum())
        count += int(replace.sum())
    return ce_sum / count, right / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a PaellaPipeline folder")
    ap.add_argument("--n", type=int, default=256, help="fresh scenes")
    ap.add_argument("--seed", type=int, default=7_000_000, help="seed of the fresh scenes")
    ap.add_argument("--levels", default="0.2,0.5,0.8,0.9,1.0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: shipped paella-tiny unless given, 4 scenes, t = 0.5 and 1, 1 thread")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.levels, args.threads = 4, "0.5,1.0", 1
        if args.model is None:
            from t2i.backends import default_registry

            args.model = default_registry().resolve("paella-tiny").location
    if args.model is None:
        ap.error("give --model FOLDER (a PaellaPipeline folder)")
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    scenes = [sample_scene(rng) for _ in range(args.n)]
    own = [training_caption(s.to_dict(), rng, 0.25) for s in scenes]  # as paella-tiny's recipe draws them
    captions = {"own": own, "empty": [""] * len(own), "another scene's": own[1:] + own[:1]}
    pipe = PaellaPipeline.from_pretrained(args.model)
    pixels = torch.stack([torch.from_numpy(np.array(render_scene(s, 64))) for s in scenes])
    with torch.no_grad():
        x = pipe.vqgan.encode(pixels.permute(0, 3, 1, 2).float() / 255)  # (N, 16, 16)
    print(f"{args.model}: {args.n} fresh scenes (seed {args.seed}); cross-entropy (nats) / accuracy on replaced tokens")
    print("| t | " + " | ".join(captions) + " |")
    print("|---" * (len(captions) + 1) + "|")
    for t in (float(v) for v in args.levels.split(",")):
        cells = []
        for texts in captions.values():
            ce, acc = replaced_token_scores(pipe, x, texts, t, torch.Generator().manual_seed(1))
            cells.append(f"{ce:.3f} / {acc:.3f}")
        print(f"| {t:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
