"""The regional renderer alone on shapes world: objects drawn inside their region's box.

    python experiments/renderer_alone.py [--n 100] [--model shapes-xl] [--guidance G] [--option init_strength=0.8]
                                         [--steps N]
    python experiments/renderer_alone.py --smoke     (one scene, 2-step images, every mode: seconds, for the tests)

Ground-truth Canvas programs of seeded world scenes with no position words in any text; each image is
drawn with region mode omost (score manipulation), couple (masks only) and off (the same tokens, no
masks); an object counts when the detector finds its shape and colour with its centre in its box.
"Drawn anywhere" counts the object wherever it is, and "in box of drawn" is placement alone: a low
drawn rate is the image model failing to draw, not the renderer failing to place.
Chance: the rate for objects placed as another scene of the same size places them.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from t2i.backends import default_registry
from t2i.evaluation.regions import chance_in_box, renderer_alone
from t2i.generate import resolve_request
from t2i.types import ComposeOptions, GenerationRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--model", default="shapes-xl")
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--modes", default="omost,couple,off")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a model option for every image, e.g. init_strength=0.8 (start from the canvas's colours)")
    ap.add_argument("--steps", type=int, help="sampling steps of every image (default: the model's)")
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: one scene, 2-step images, every mode")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.steps = 1, 2
    options = dict(o.split("=", 1) for o in args.option)
    registry = default_registry()
    resolved, backend = registry.load(args.model)
    rows = {}
    for mode in args.modes.split(","):
        def draw(program: str, seed: int, mode: str = mode):
            req = GenerationRequest("", model=args.model, seed=seed, guidance=args.guidance, steps=args.steps,
                                    compose=ComposeOptions(enabled=True, program=program),
                                    model_options={**options, "region_mode": mode})
            return backend.generate(resolve_request(req, resolved.spec)).images[0]

        bar = tqdm(total=args.n, desc=mode, file=sys.stderr)
        rows[mode] = renderer_alone(draw, args.n, args.seed, lambda i, bar=bar: bar.update(1))
        bar.close()
    print(f"{args.n} scenes ({rows[next(iter(rows))]['objects']} objects), {args.model}, positionless programs"
          + (f", options {options}" if options else "") + (f", {args.steps} steps" if args.steps else ""))
    for mode, r in rows.items():
        print(f"{mode:<8} in box {r['in_box']:.3f}   drawn anywhere {r['drawn']:.3f}   "
              f"in box of drawn {r['in_box_of_drawn']:.3f}")
    print(f"chance   in box {chance_in_box(200 if args.smoke else 2000, args.seed):.3f}")


if __name__ == "__main__":
    main()
