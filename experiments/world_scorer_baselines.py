"""Score the built-in shapes suite on ground-truth renders, blank images and uniform noise.

    python experiments/world_scorer_baselines.py
    python experiments/world_scorer_baselines.py --smoke   (one suite line a task: a second, for the tests)

Prints the overall GenEval-style accuracy of each folder (ground truth should be 1.0, the others ~0).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from t2i.world.suite import build_suite, builtin_suite, render_suite, score_folder


def _fill(root: Path, n: int, make) -> None:
    for i in range(n):
        d = root / f"{i:05d}" / "samples"
        d.mkdir(parents=True)
        Image.fromarray(make(i)).save(d / "0000.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: one suite line a task")
    args = ap.parse_args()
    lines = build_suite(1, 0) if args.smoke else builtin_suite()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        render_suite(lines, root / "ground-truth", 64)
        _fill(root / "blank", len(lines), lambda i: np.full((64, 64, 3), 255, np.uint8))
        _fill(root / "noise", len(lines),
              lambda i: np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        for name in ("ground-truth", "blank", "noise"):
            result = score_folder(root / name, lines)
            tasks = "  ".join(f"{t} {a:.3f}" for t, a in result.per_task.items())
            print(f"{name:<13} overall {result.overall:.3f}   {tasks}")


if __name__ == "__main__":
    main()
