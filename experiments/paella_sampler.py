"""Paella sampler settings (start/end temperature x guidance) scored on a development set, not the suite.

    python experiments/paella_sampler.py --model runs/paella-v3/model --temperatures 0.7,0.3 1.0,0.3 1.5,0.3 \
        --guidance 3,6 --out runs/sampler-dev
    python experiments/paella_sampler.py --smoke   (paella-tiny, 2 settings, 2 steps, 1 prompt: seconds, for the tests)

The development set is drawn like the built-in suite but from another seed (`--dev-seed`), for the tasks
whose prompts a sampler setting decides first (single_object, colors, two_object by default), and its images
use seeds from `--seed` (default 50,000; the suite's start at 0), so settings chosen here are not fitted to the
suite's images.  Each setting is one resumable eval run in OUT/TASKS-nN-sS/T0_T1-gG (a folder per development
set and step count: a resumed run never scores another set's images).  Prints a Markdown table, one row
per setting.  With --smoke and no --out the runs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from t2i.backends import default_registry
from t2i.evaluation.runner import run_suite
from t2i.world.suite import build_suite


def parse_temperatures(texts: list[str]) -> list[tuple[float, float]]:
    pairs = []
    for text in texts:
        parts = text.split(",")
        if len(parts) != 2:
            raise SystemExit(f"a temperature setting is two numbers, start and end (e.g. 1.0,0.3), got {text!r}")
        t0, t1 = float(parts[0]), float(parts[1])
        if min(t0, t1) <= 0:
            raise SystemExit(f"temperatures must be positive, got {text!r}")
        pairs.append((t0, t1))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="paella-tiny")
    ap.add_argument("--temperatures", nargs="+", default=["0.7,0.3", "1.0,0.3", "1.5,0.3"],
                    help="start,end temperature pairs")
    ap.add_argument("--guidance", default="3,6", help="comma-separated guidance scales")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--tasks", default="single_object,colors,two_object")
    ap.add_argument("--per-task", type=int, default=24)
    ap.add_argument("--dev-seed", type=int, default=777, help="seed of the development prompts (suite: 0)")
    ap.add_argument("--seed", type=int, default=50_000, help="first image seed (the suite's runs start at 0)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: 2 settings, 2 steps, one single_object prompt, a temporary --out")
    args = ap.parse_args()
    if args.smoke:
        args.temperatures, args.guidance, args.steps, args.tasks, args.per_task = ["1.0,0.3"], "3,6", 2, \
            "single_object", 1
    elif args.out is None:
        raise SystemExit("give --out DIR (one resumable eval run a setting is written there)")
    with tempfile.TemporaryDirectory() as tmp:
        sweep(args, args.out or Path(tmp))


def sweep(args: argparse.Namespace, out: Path) -> None:
    temps = parse_temperatures(args.temperatures)
    scales = [float(g) for g in args.guidance.split(",")]
    lines = build_suite(args.per_task, args.dev_seed, tuple(args.tasks.split(",")))
    registry = default_registry()
    rows = []
    dev_set = out / f"{args.tasks.replace(',', '+')}-n{args.per_task}-s{args.steps}"
    for t0, t1 in temps:
        for g in scales:
            settings = {"steps": args.steps, "guidance": g, "model_options": {"temperature": f"{t0},{t1}"}}
            run = run_suite(lines, registry, args.model, dev_set / f"{t0}_{t1}-g{g}", seed=args.seed,
                            settings=settings, progress=True)
            rows.append((f"{t0}, {t1}", g, run.score.per_task, run.score.overall))
    tasks = list(rows[0][2])
    print(f"{args.model}: {len(lines)} development lines (seed {args.dev_seed}), 1 image each from seed "
          f"{args.seed}, {args.steps} steps")
    print("| temperature | guidance | " + " | ".join(tasks) + " | overall |")
    print("|---" * (len(tasks) + 3) + "|")
    for temp, g, per_task, overall in rows:
        print(f"| {temp} | {g:g} | " + " | ".join(f"{per_task[t]:.3f}" for t in tasks) + f" | {overall:.3f} |")


if __name__ == "__main__":
    main()
