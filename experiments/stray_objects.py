"""Nothing but what was asked: how often an eval run's images hold an object the prompt did not name.

    python experiments/stray_objects.py DIR [DIR ...] [--tasks two_object,position,color_attr]
    python experiments/stray_objects.py --smoke   (ground-truth renders of one suite line a task: a second)

DIR is a `t2i eval` folder (GenEval layout, scored: its results.jsonl holds each image's detections and each
line folder its suite line).  For each folder and task it prints the share of images in which the detector
finds an object of a shape the prompt does not name, or of a colour the prompt does not give that shape
("unnamed"), and the share with more copies of a named shape than asked ("extra copies": what a hi-res pass
taken too far draws).  Ground-truth renders score 0.000 on both.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

from t2i.world.suite import SuiteLine, build_suite, parse_line, render_suite, score_folder

TASKS = ("two_object", "position", "color_attr")


def strays(line: SuiteLine, detections: list[dict]) -> tuple[bool, bool]:
    """(an unnamed object is there, a named shape is there more often than asked) for one image."""
    named = {r.cls for r in line.include}
    colours: dict[str, set[str]] = {}
    for r in line.include:
        if r.color is not None:
            colours.setdefault(r.cls, set()).add(r.color)
    asked = Counter()
    for r in line.include:
        asked[r.cls] += r.count
    seen = Counter(d["shape"] for d in detections)
    unnamed = any(d["shape"] not in named or (d["shape"] in colours and d["color"] not in colours[d["shape"]])
                  for d in detections)
    extra = any(seen[c] > n for c, n in asked.items())
    return unnamed, extra


def folder_shares(root: Path, tasks: tuple[str, ...]) -> dict[str, tuple[int, float, float]]:
    """task -> (images, share with an unnamed object, share with extra copies), and "all" over `tasks`."""
    counts: dict[str, list[int]] = {}
    for row in (json.loads(t) for t in (root / "results.jsonl").read_text(encoding="utf-8").splitlines() if t):
        if row["tag"] not in tasks:
            continue
        meta = (root / f"{row['index']:05d}" / "metadata.jsonl").read_text(encoding="utf-8")
        line = parse_line(meta.splitlines()[0], str(root))
        unnamed, extra = strays(line, row["detections"])
        for key in (row["tag"], "all"):
            c = counts.setdefault(key, [0, 0, 0])
            c[0], c[1], c[2] = c[0] + 1, c[1] + unnamed, c[2] + extra
    return {k: (n, u / n, e / n) for k, (n, u, e) in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="*")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default %(default)s)")
    ap.add_argument("--smoke", action="store_true", help="ground-truth renders of one suite line a task")
    args = ap.parse_args()
    tasks = tuple(args.tasks.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folders = args.folders
        if args.smoke:
            folders = [Path(tmp) / "ground-truth"]
            lines = build_suite(1, 0)
            render_suite(lines, folders[0], 64)
            (folders[0] / "results.jsonl").write_text("".join(json.dumps(v.to_dict()) + "\n" for v in
                                                              score_folder(folders[0], lines).verdicts))
        if not folders:
            ap.error("give at least one eval folder (or --smoke)")
        print("| folder | task | images | unnamed object | extra copies |")
        print("|---|---|---|---|---|")
        for root in folders:
            for task, (n, unnamed, extra) in folder_shares(root, tasks).items():
                print(f"| {root.name} | {task} | {n} | {unnamed:.3f} | {extra:.3f} |")


if __name__ == "__main__":
    main()
