"""Two models' eval runs side by side, line by line: is B better than A beyond the suite's noise?

A suite score on 64 lines a task has a standard error of about 0.06 a task and 0.025 overall, so two
models a point apart cannot be told apart from their scores alone.  But `t2i eval` draws image k of
line i from the same seed in every run, so two runs of one suite with the same seed and images per
line start each image from the same noise; most of the line-to-line variance (easy and hard prompts)
is shared, and the difference measured line by line has a far smaller standard error.

For each task t with units u (a suite line of one run pair; its score is the share of its K images
judged correct): d_u = B_u - A_u, diff_t = mean(d), se_t = std(d) / sqrt(n_t).  Overall follows
GenEval (the mean over tasks): diff = mean_t diff_t, se = sqrt(sum_t se_t^2) / T.  Wins count the
units where one model scored higher.

With `images=True` it also says how alike the two runs' images are: the PSNR of each image pair (same
line, same file name, hence the same starting noise), its mean and standard error.  A distilled student
against its teacher, or a sampler setting against the default, is judged by how closely it draws the
same picture, which the suite's pass/fail cannot see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from t2i.userfiles import read_user_text


class CompareError(ValueError):
    """The runs cannot be compared line by line (a different suite, seed or number of images)."""


@dataclass
class TaskDiff:
    task: str
    n: int  # units (suite lines x run pairs)
    a: float
    b: float
    diff: float  # b - a
    se: float  # standard error of diff, paired
    b_wins: int  # units where B scored higher
    a_wins: int


@dataclass
class ImageAgreement:
    """PSNR (dB) of B's images against A's, image by image; identical pairs count as MAX_PSNR."""

    n: int
    mean: float
    se: float
    identical: int


MAX_PSNR = 100.0  # dB, for identical images (their MSE is 0)


@dataclass
class Comparison:
    tasks: list[TaskDiff] = field(default_factory=list)
    a_overall: float = 0.0
    b_overall: float = 0.0
    diff: float = 0.0
    se: float = 0.0
    psnr: ImageAgreement | None = None  # with images=True

    @property
    def z(self) -> float:
        return self.diff / self.se if self.se > 0 else (0.0 if self.diff == 0 else math.copysign(math.inf, self.diff))

    def to_dict(self) -> dict[str, Any]:
        out = {"a_overall": self.a_overall, "b_overall": self.b_overall, "diff": self.diff, "se": self.se,
               "z": self.z, "tasks": [t.__dict__ for t in self.tasks]}
        if self.psnr is not None:
            out["psnr"] = self.psnr.__dict__
        return out


def read_run(folder: Path) -> tuple[dict[str, Any], dict[int, tuple[str, str, list[bool]]]]:
    """(summary.json, {line index: (task, prompt, [correct per image])}) of one `t2i eval` output folder."""
    summary_path, results_path = folder / "summary.json", folder / "results.jsonl"
    for p in (summary_path, results_path):
        if not p.is_file():
            raise CompareError(f"{folder}: no {p.name} (is it a finished `t2i eval` output folder?)")
    summary = json.loads(read_user_text(summary_path))
    lines: dict[int, tuple[str, str, list[bool]]] = {}
    for row in read_user_text(results_path).splitlines():
        if row.strip():
            r = json.loads(row)
            lines.setdefault(int(r["index"]), (r["tag"], r["prompt"], []))[2].append(bool(r["correct"]))
    return summary, lines


def _units(a_folder: Path, b_folder: Path) -> list[tuple[str, float, float]]:
    """[(task, A's share correct, B's)] for every line of one run pair, checked to be the same draws."""
    (sa, la), (sb, lb) = read_run(a_folder), read_run(b_folder)
    for key in ("seed", "images_per_prompt"):
        if sa.get(key) != sb.get(key):
            raise CompareError(f"{a_folder} and {b_folder} differ in {key} ({sa.get(key)} vs {sb.get(key)}): "
                               "their images do not start from the same noise")
    if la.keys() != lb.keys():
        raise CompareError(f"{a_folder} and {b_folder} hold different suite lines ({len(la)} vs {len(lb)})")
    units = []
    for i in sorted(la):
        (ta, pa, ca), (tb, pb, cb) = la[i], lb[i]
        if (ta, pa) != (tb, pb):
            raise CompareError(f"line {i} differs: {pa!r} ({ta}) in {a_folder}, {pb!r} ({tb}) in {b_folder}")
        if len(ca) != len(cb):
            raise CompareError(f"line {i} has {len(ca)} images in {a_folder} and {len(cb)} in {b_folder}")
        units.append((ta, float(np.mean(ca)), float(np.mean(cb))))
    return units


def image_psnrs(a_folder: Path, b_folder: Path) -> list[float]:
    """PSNR (dB) of every image of B's run against the same file of A's run (both from `t2i eval`)."""
    from t2i.world.detector import ImageReadError, load_rgb

    names = []
    for row in read_user_text(a_folder / "results.jsonl").splitlines():
        if row.strip():
            names.append(json.loads(row)["filename"])
    out = []
    for name in names:
        try:
            x, y = load_rgb(a_folder / name), load_rgb(b_folder / name)
        except ImageReadError as e:
            raise CompareError(f"{name}: {e}") from e
        if x.shape != y.shape:
            raise CompareError(f"{name} is {x.shape[1]}x{x.shape[0]} in {a_folder} and {y.shape[1]}x{y.shape[0]} "
                               f"in {b_folder}")
        mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
        out.append(MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * math.log10(1.0 / mse)))  # images in [0, 1]
    return out


def compare_runs(a: Sequence[Path], b: Sequence[Path], images: bool = False) -> Comparison:
    """A's runs against B's, paired in order (a[j] and b[j] from the same suite, seed and K); `images`:
    also the PSNR of B's images against A's (Comparison.psnr)."""
    if not a or len(a) != len(b):
        raise CompareError(f"give as many runs for B as for A, at least one each (got {len(a)} and {len(b)})")
    per: dict[str, list[tuple[float, float]]] = {}
    for fa, fb in zip(a, b, strict=True):
        for task, ua, ub in _units(Path(fa), Path(fb)):
            per.setdefault(task, []).append((ua, ub))
    out = Comparison()
    for task, pairs in per.items():
        x = np.array(pairs)  # (n, 2)
        d = x[:, 1] - x[:, 0]
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
        out.tasks.append(TaskDiff(task, len(d), float(x[:, 0].mean()), float(x[:, 1].mean()), float(d.mean()), se,
                                  int((d > 0).sum()), int((d < 0).sum())))
    n = len(out.tasks)
    out.a_overall = float(np.mean([t.a for t in out.tasks]))
    out.b_overall = float(np.mean([t.b for t in out.tasks]))
    out.diff = float(np.mean([t.diff for t in out.tasks]))
    out.se = math.sqrt(sum(t.se ** 2 for t in out.tasks)) / n
    if images:
        psnrs = np.array([v for fa, fb in zip(a, b, strict=True) for v in image_psnrs(Path(fa), Path(fb))])
        se = float(psnrs.std(ddof=1) / math.sqrt(len(psnrs))) if len(psnrs) > 1 else 0.0
        out.psnr = ImageAgreement(len(psnrs), float(psnrs.mean()), se, int((psnrs == MAX_PSNR).sum()))
    return out


def format_comparison(c: Comparison) -> str:
    rows = [f"{'task':<14} {'n':>5} {'A':>7} {'B':>7} {'B-A':>8} {'se':>7}  B wins / A wins"]
    for t in c.tasks:
        rows.append(f"{t.task:<14} {t.n:>5} {t.a:>7.3f} {t.b:>7.3f} {t.diff:>+8.3f} {t.se:>7.3f}  "
                    f"{t.b_wins} / {t.a_wins}")
    rows.append(f"{'overall':<14} {'':>5} {c.a_overall:>7.3f} {c.b_overall:>7.3f} {c.diff:>+8.3f} {c.se:>7.3f}  "
                f"z = {c.z:+.2f}")
    if c.psnr is not None:
        p = c.psnr
        rows.append(f"images: B against A, PSNR {p.mean:.2f} dB (se {p.se:.2f}) over {p.n} image pairs, "
                    f"{p.identical} identical")
    return "\n".join(rows)
