"""Suite score and time per image against the number of sampling steps, one eval run per step count.

    python experiments/quality_vs_steps.py --model paella-tiny --steps 8,12,16,32 --out runs/steps-paella-tiny
    python experiments/quality_vs_steps.py --smoke   (1 and 2 steps, one suite line a task: seconds, for the tests)

Each run is `t2i eval` with `--steps N` into OUT/steps-N (resumable: images already there are kept and
only scored again); the seconds per image are the generation time (presample/compose included, model
loading and scoring not) over the images this process generated.
Prints a Markdown table: one row per step count, the suite's tasks as columns.  With --smoke and no --out
the runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from t2i.backends import default_registry
from t2i.evaluation.runner import run_suite
from t2i.world.suite import SuiteLine, build_suite, builtin_suite, read_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="paella-tiny")
    ap.add_argument("--steps", default="8,12,16,32", help="comma-separated step counts")
    ap.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: 1 and 2 steps, one suite line a task, a temporary --out")
    args = ap.parse_args()
    if args.smoke:
        args.steps = "1,2"
    elif args.out is None:
        raise SystemExit("give --out DIR (one resumable eval run a step count is written there)")
    counts = [int(s) for s in args.steps.split(",")]
    if any(n < 1 for n in counts):
        raise SystemExit("step counts must be positive")
    lines = build_suite(1, 0) if args.smoke else read_suite(args.suite) if args.suite else builtin_suite()
    with tempfile.TemporaryDirectory() as tmp:
        sweep(args, counts, lines, args.out or Path(tmp))


def sweep(args: argparse.Namespace, counts: list[int], lines: list[SuiteLine], out: Path) -> None:
    registry = default_registry()
    rows = []
    for n in counts:
        settings = {"steps": n} | ({"guidance": args.guidance} if args.guidance is not None else {})
        run = run_suite(lines, registry, args.model, out / f"steps-{n}", seed=args.seed, settings=settings,
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
