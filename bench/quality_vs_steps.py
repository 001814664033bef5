"""Suite score and time per image against the number of sampling steps, one eval run per step count.

    python bench/quality_vs_steps.py --model paella-tiny --steps 8,12,16,32 --out runs/steps-paella-tiny

Each run is `t2i eval` with `--steps N` into OUT/steps-N (resumable: images already there are kept and
only scored again); the seconds per image are the generation time (presample/compose included, model
loading and scoring not) over the images this process generated.
Prints a Markdown table: one row per step count, the suite's tasks as columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from t2i.backends import default_registry
from t2i.evaluation.runner import run_suite
from t2i.world.suite import builtin_suite, read_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="paella-tiny")
    ap.add_argument("--steps", default="8,12,16,32", help="comma-separated step counts")
    ap.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    counts = [int(s) for s in args.steps.split(",")]
    if any(n < 1 for n in counts):
        raise SystemExit("step counts must be positive")
    lines = read_suite(args.suite) if args.suite else builtin_suite()
    registry = default_registry()
    rows = []
    for n in counts:
        settings = {"steps": n} | ({"guidance": args.guidance} if args.guidance is not None else {})
        run = run_suite(lines, registry, args.model, args.out / f"steps-{n}", seed=args.seed, settings=settings,
                        progress=True)
        per_image = run.generate_seconds / run.generated if run.generated else float("nan")
        rows.append((n, run.score.per_task, run.score.overall, per_image))
    tasks = list(rows[0][1])
    print(f"{args.model}, {len(lines)} suite lines, 1 image each, seed {args.seed}"
          + (f", guidance {args.guidance}" if args.guidance is not None else ""))
    print("| steps | " + " | ".join(tasks) + " | overall | s/image |")
    print("|---" * (len(tasks) + 3) + "|")
    for n, per_task, overall, per_image in rows:
        cells = " | ".join(f"{per_task[t]:.3f}" for t in tasks)
        print(f"| {n} | {cells} | {overall:.3f} | {per_image:.3f} |")


if __name__ == "__main__":
    main()
