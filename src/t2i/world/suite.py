"""GenEval-style suite for shapes world: build it by seed, read GenEval's file format, score images.

A suite line is GenEval's JSON (`tag`, `prompt`, `include: [{class, count, color?, position?}]`,
`exclude?`) with `class` a shape; our own suites add `scene`, a ground-truth scene that satisfies the
line.  Images for line i live at `DIR/{i:05d}/samples/{k:04d}.png` (GenEval's layout).

Scoring follows GenEval's `evaluate`: every include group must be found (at least `count` objects of
the class), with the colour if given, in the relation to an earlier group if given (GenEval's
position rule); exclude groups must have fewer than `count`.  One deliberate difference: GenEval
takes the detector's most confident objects of a class before checking colour; ours prefers objects
of the requested colour, so the verdict does not depend on an arbitrary order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from t2i.world.detector import Detection, ImageReadError, detect, load_rgb
from t2i.world.relations import RELATIONS, relative_position
from t2i.world.scene import Scene, SceneError, place_objects
from t2i.world.vocab import BACKGROUNDS, COLORS, NUMBER_WORDS, PLURALS, SHAPES, count_phrase

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
MAX_LINE_CHARS = 100_000
MIN_SCORABLE_SIDE = 16
MAX_SCORED_SIDE = 8192
LINE_KEYS = {"tag", "prompt", "include", "exclude", "scene"}  # GenEval's keys (tag, prompt, include, exclude) + ours
SCENE_KEYS = {"schema", "background", "objects"}  # what Scene.to_dict writes


class SuiteError(ValueError):
    """A suite file or image folder that cannot be scored."""


@dataclass(frozen=True)
class Requirement:
    """One include/exclude group: `count` objects of `cls`, optionally of a colour and in a relation."""

    cls: str
    count: int
    color: str | None = None
    position: tuple[str, int] | None = None  # (relation, index of an earlier include group)


@dataclass(frozen=True)
class SuiteLine:
    tag: str
    prompt: str
    include: tuple[Requirement, ...]
    exclude: tuple[Requirement, ...] = ()
    scene: Scene | None = None

    def to_dict(self) -> dict[str, Any]:
        def req(r: Requirement) -> dict[str, Any]:
            d: dict[str, Any] = {"class": r.cls, "count": r.count}
            if r.color is not None:
                d["color"] = r.color
            if r.position is not None:
                d["position"] = [r.position[0], r.position[1]]
            return d

        d: dict[str, Any] = {"tag": self.tag, "include": [req(r) for r in self.include]}
        if self.exclude:
            d["exclude"] = [req(r) for r in self.exclude]
        d["prompt"] = self.prompt
        if self.scene is not None:
            d["scene"] = self.scene.to_dict()
        return d


# ---------------------------------------------------------------------------- building

def _a(noun: str) -> str:
    return count_phrase(1, noun)


def _suite_line(task: str, rng: random.Random) -> SuiteLine:
    """One random line of `task` with a ground-truth scene that satisfies it."""
    bg = rng.choice(list(BACKGROUNDS))
    s1, s2 = rng.sample(SHAPES, 2)
    colors = [c for c in COLORS if c != bg]
    c1, c2 = rng.sample(colors, 2)
    if task == "single_object":
        inc = (Requirement(s1, 1),)
        return SuiteLine(task, f"a photo of {_a(s1)}", inc, scene=_scene(rng, bg, [(s1, None)]))
    if task == "two_object":
        inc = (Requirement(s1, 1), Requirement(s2, 1))
        scene = _scene(rng, bg, [(s1, None), (s2, None)])
        return SuiteLine(task, f"a photo of {_a(s1)} and {_a(s2)}", inc, scene=scene)
    if task == "counting":
        n = rng.randint(2, 4)
        prompt = f"a photo of {NUMBER_WORDS[n]} {PLURALS[s1]}"
        return SuiteLine(task, prompt, (Requirement(s1, n),), (Requirement(s1, n + 1),),
                         scene=_scene(rng, bg, [(s1, None)] * n))
    if task == "colors":
        inc = (Requirement(s1, 1, color=c1),)
        return SuiteLine(task, f"a photo of {_a(f'{c1} {s1}')}", inc, scene=_scene(rng, bg, [(s1, c1)]))
    if task == "position":
        rel = rng.choice(RELATIONS)
        inc = (Requirement(s2, 1), Requirement(s1, 1, position=(rel, 0)))
        prompt = f"a photo of {_a(s1)} {rel} {_a(s2)}"
        for _ in range(1000):
            scene = _scene(rng, bg, [(s2, None), (s1, None)])
            if rel in relative_position(scene.objects[1].shape_box(), scene.objects[0].shape_box()):
                return SuiteLine(task, prompt, inc, scene=scene)
        raise SceneError(f"could not place {prompt!r}")
    if task == "color_attr":
        inc = (Requirement(s1, 1, color=c1), Requirement(s2, 1, color=c2))
        prompt = f"a photo of {_a(f'{c1} {s1}')} and {_a(f'{c2} {s2}')}"
        return SuiteLine(task, prompt, inc, scene=_scene(rng, bg, [(s1, c1), (s2, c2)]))
    raise SuiteError(f"unknown task {task!r} (allowed: {', '.join(TASKS)})")


def _scene(rng: random.Random, bg: str, specs: list[tuple[str, str | None]]) -> Scene:
    return Scene(background=bg, objects=place_objects(rng, specs, bg))


def build_suite(per_task: int = 64, seed: int = 0, tasks: tuple[str, ...] = TASKS) -> list[SuiteLine]:
    """`per_task` lines of every task, deterministic by seed."""
    if per_task < 1:
        raise SuiteError("per_task must be at least 1")
    rng = random.Random(seed)
    return [_suite_line(task, rng) for task in tasks for _ in range(per_task)]


def write_suite(lines: list[SuiteLine], path: str | Path) -> None:
    """Write a suite as JSON lines to a new file (never overwriting)."""
    from t2i.outputs import write_new_text

    write_new_text(path, "".join(json.dumps(line.to_dict()) + "\n" for line in lines))


# ---------------------------------------------------------------------------- reading

def _requirement(d: Any, where: str, n_earlier: int | None) -> Requirement:
    if not isinstance(d, dict):
        raise SuiteError(f"{where}: a requirement must be an object")
    unknown = set(d) - {"class", "count", "color", "position"}
    if unknown:
        raise SuiteError(f"{where}: unknown keys {sorted(unknown)}")
    cls, count = d.get("class"), d.get("count", 1)
    if cls not in SHAPES:
        raise SuiteError(f"{where}: unknown class {cls!r} (shapes world knows {', '.join(SHAPES)})")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
        raise SuiteError(f"{where}: count must be an integer in [1, 16], got {count!r}")
    color = d.get("color")
    if color is not None and color not in COLORS:
        raise SuiteError(f"{where}: unknown color {color!r} (allowed: {', '.join(COLORS)})")
    position = d.get("position")
    if position is not None:
        if n_earlier is None:
            raise SuiteError(f"{where}: exclude groups cannot have a position")
        if (not isinstance(position, list) or len(position) != 2 or position[0] not in RELATIONS
                or isinstance(position[1], bool) or not isinstance(position[1], int)
                or not 0 <= position[1] < n_earlier):
            raise SuiteError(f"{where}: position must be [relation, index of an earlier group] with relation "
                             f"in {list(RELATIONS)}, got {position!r}")
        position = (position[0], position[1])
    return Requirement(cls, count, color, position)


def parse_line(text: str, where: str) -> SuiteLine:
    """Parse one suite line; `where` ('file:line') prefixes every error."""
    if len(text) > MAX_LINE_CHARS:
        raise SuiteError(f"{where}: line longer than {MAX_LINE_CHARS} characters")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(f"{where}: not valid JSON ({e.msg})") from e
    except (ValueError, RecursionError) as e:  # an int of over 4300 digits; arrays nested thousands deep
        raise SuiteError(f"{where}: not readable JSON ({type(e).__name__}: {str(e).split(';')[0]})") from None
    if not isinstance(d, dict):
        raise SuiteError(f"{where}: a suite line must be a JSON object")
    unknown = set(d) - LINE_KEYS
    if unknown:  # a misspelt "exlcude" would otherwise drop a requirement and score wrong images as right
        raise SuiteError(f"{where}: unknown keys {sorted(unknown)} (a suite line has {', '.join(sorted(LINE_KEYS))})")
    tag, prompt = d.get("tag"), d.get("prompt")
    if tag not in TASKS:
        raise SuiteError(f"{where}: unknown tag {tag!r} (allowed: {', '.join(TASKS)})")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SuiteError(f"{where}: prompt must be a non-empty string")
    inc = d.get("include")
    if not isinstance(inc, list) or not inc:
        raise SuiteError(f"{where}: include must be a non-empty list")
    include = tuple(_requirement(r, f"{where}: include[{k}]", k) for k, r in enumerate(inc))
    exc = d.get("exclude", [])
    if not isinstance(exc, list):
        raise SuiteError(f"{where}: exclude must be a list")
    exclude = tuple(_requirement(r, f"{where}: exclude[{k}]", None) for k, r in enumerate(exc))
    scene = None
    if "scene" in d:
        if isinstance(d["scene"], dict) and set(d["scene"]) - SCENE_KEYS:
            raise SuiteError(f"{where}: scene: unknown keys {sorted(set(d['scene']) - SCENE_KEYS)} (a scene has "
                             f"{', '.join(sorted(SCENE_KEYS))})")
        try:
            scene = Scene.from_dict(d["scene"])
        except (SceneError, TypeError) as e:
            raise SuiteError(f"{where}: bad scene: {e}") from e
    return SuiteLine(tag, prompt, include, exclude, scene)


def read_suite(path: str | Path) -> list[SuiteLine]:
    """Read a suite file (GenEval's JSONL format); blank lines are ignored."""
    path = Path(path)
    from t2i.userfiles import read_user_text

    try:
        text = read_user_text(path)
    except OSError as e:
        raise SuiteError(f"cannot read the suite: {e}") from e
    lines = [parse_line(t, f"{path}:{n}") for n, t in enumerate(text.splitlines(), start=1) if t.strip()]
    if not lines:
        raise SuiteError(f"{path}: the suite has no lines")
    return lines


# ---------------------------------------------------------------------------- scoring

@dataclass
class ImageVerdict:
    """The score of one image."""

    index: int
    tag: str
    prompt: str
    filename: str
    correct: bool
    reason: str
    detections: list[Detection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "tag": self.tag, "prompt": self.prompt, "filename": self.filename,
                "correct": self.correct, "reason": self.reason,
                "detections": [d.to_dict() for d in self.detections]}


def evaluate(line: SuiteLine, detections: list[Detection]) -> tuple[bool, str]:
    """GenEval's verdict for one image's detections: (correct, reasons)."""
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []
    for req in line.include:
        cands = [d for d in detections if d.shape == req.cls]
        cands.sort(key=lambda d: (req.color is not None and d.color != req.color, -d.score))
        found = cands[: req.count]
        ok = True
        if len(found) < req.count:
            ok = False
            reasons.append(f"expected {req.cls}>={req.count}, found {len(cands)}")
        elif req.color is not None and sum(d.color == req.color for d in found) < req.count:
            ok = False
            reasons.append(f"expected {req.color} {req.cls}>={req.count}, found "
                           f"{sum(d.color == req.color for d in found)} {req.color}; "
                           f"got {', '.join(d.color for d in found)}")
        elif req.position is not None:
            rel, target = req.position
            if groups[target] is None:
                ok = False
                reasons.append(f"no target for {req.cls} to be {rel}")
            else:
                for d in found:
                    for t in groups[target]:
                        if rel not in relative_position(d.box, t.box):
                            ok = False
                    if not ok:
                        reasons.append(f"expected {req.cls} {rel} target")
                        break
        groups.append(found if ok else None)
    for req in line.exclude:
        n = sum(d.shape == req.cls for d in detections)
        if n >= req.count:
            reasons.append(f"expected {req.cls}<{req.count}, found {n}")
    return not reasons, "; ".join(reasons)


def suite_images(root: Path, n_lines: int) -> Iterator[tuple[int, Path | None]]:
    """(line index, image path) for every image of the suite; (i, None) for a line with no images."""
    for i in range(n_lines):
        folder = root / f"{i:05d}" / "samples"
        files = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if not files:
            yield i, None
        for f in files:
            yield i, f


def score_image(line: SuiteLine, index: int, path: Path | None, root: Path,
                size: tuple[int, int] | None = None) -> ImageVerdict:
    """Score one image file; unreadable, missing, tiny or wrongly sized images count as wrong, with a reason."""
    name = str(path.relative_to(root)) if path is not None else f"{index:05d}/samples/"
    if path is None:
        return ImageVerdict(index, line.tag, line.prompt, name, False, "no images for this line")
    try:
        img = load_rgb(path)
    except ImageReadError as e:
        return ImageVerdict(index, line.tag, line.prompt, name, False, f"unreadable image: {e}")
    h, w, _ = img.shape
    if size is not None and (w, h) != size:
        return ImageVerdict(index, line.tag, line.prompt, name, False,
                            f"image is {w}x{h}, expected {size[0]}x{size[1]}")
    if min(w, h) < MIN_SCORABLE_SIDE:
        return ImageVerdict(index, line.tag, line.prompt, name, False, f"image is {w}x{h}, too small to score")
    dets = detect(img)
    ok, why = evaluate(line, dets)
    return ImageVerdict(index, line.tag, line.prompt, name, ok, why, dets)


@dataclass
class SuiteScore:
    """Per-task accuracy (fraction of images correct) and the overall mean of tasks."""

    per_task: dict[str, float]
    counts: dict[str, int]
    overall: float
    verdicts: list[ImageVerdict]
    problems: list[str]

    def table(self) -> str:
        rows = [f"{'task':<14} {'images':>6} {'accuracy':>8}"]
        rows += [f"{t:<14} {self.counts[t]:>6} {self.per_task[t]:>8.3f}" for t in self.per_task]
        rows.append(f"{'overall':<14} {sum(self.counts.values()):>6} {self.overall:>8.3f}")
        return "\n".join(rows)


def summarise(verdicts: list[ImageVerdict]) -> SuiteScore:
    """Aggregate verdicts GenEval's way: accuracy per task, overall = mean over tasks present."""
    per: dict[str, list[bool]] = {}
    for v in verdicts:
        per.setdefault(v.tag, []).append(v.correct)
    per_task = {t: float(np.mean(per[t])) for t in TASKS if t in per}
    overall = float(np.mean(list(per_task.values()))) if per_task else 0.0
    problems = [f"{v.filename}: {v.reason}" for v in verdicts
                if v.reason.startswith(("unreadable", "no images", "image is"))]
    return SuiteScore(per_task, {t: len(per[t]) for t in per_task}, overall, verdicts, problems)


def score_folder(root: str | Path, lines: list[SuiteLine], size: tuple[int, int] | None = None,
                 progress: bool = False) -> SuiteScore:
    """Score every image under `root` (GenEval layout) against `lines`."""
    from tqdm import tqdm

    if size is not None and not (
            isinstance(size, tuple | list) and len(size) == 2
            and all(not isinstance(v, bool) and isinstance(v, int) and MIN_SCORABLE_SIDE <= v <= MAX_SCORED_SIDE
                    for v in size)):
        shown = "x".join(map(str, size)) if isinstance(size, tuple | list) else repr(size)
        raise SuiteError(f"--size must be WIDTHxHEIGHT with each side in [{MIN_SCORABLE_SIDE}, {MAX_SCORED_SIDE}] "
                         f"(smaller images cannot be scored), got {shown}")
    root = Path(root)
    if not root.is_dir():
        raise SuiteError(f"{root}: not a folder")
    items = list(suite_images(root, len(lines)))
    if all(p is None for _, p in items):
        raise SuiteError(f"{root}: no images in the layout {{i:05d}}/samples/{{k:04d}}.png for this suite")
    verdicts = [score_image(lines[i], i, p, root, size)
                for i, p in tqdm(items, desc="scoring", unit="img", disable=not progress)]
    result = summarise(verdicts)
    extra = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name.isdigit() and int(d.name) >= len(lines))
    result.problems += [f"{root / name}: folder beyond the suite's {len(lines)} lines (not scored)" for name in extra]
    return result


def render_suite(lines: list[SuiteLine], out: str | Path, size: int | tuple[int, int] = 64,
                 images_per_line: int = 1) -> int:
    """Write the ground-truth render of every line's scene in GenEval's layout; returns images written."""
    from t2i.outputs import save_png_atomic, write_new_text
    from t2i.world.draw import render_scene

    out = Path(out)
    n = 0
    for i, line in enumerate(lines):
        if line.scene is None:
            raise SuiteError(f"suite line {i + 1} has no scene to render")
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        write_new_text(folder / "metadata.jsonl", json.dumps(line.to_dict()) + "\n")
        img = render_scene(line.scene, size)
        for k in range(images_per_line):
            save_png_atomic(img, folder / "samples" / f"{k:04d}.png")
            n += 1
    return n


BUILTIN_SUITE = "shapes_geneval.jsonl"  # build_suite(per_task=64, seed=0), shipped as a file


def builtin_suite() -> list[SuiteLine]:
    """The shipped shapes-world suite: 64 lines per task, seed 0 (`t2i world suite --per-task 64 --seed 0`)."""
    from importlib import resources

    return read_suite(Path(str(resources.files("t2i.world") / "data" / BUILTIN_SUITE)))
