"""`t2i world`: the procedural shapes world (scenes, datasets, the suite, scoring, the detector)."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from t2i.cli.common import FORMATTER, load_suite, printable, size_arg

EXAMPLE = """examples:
  t2i world sample --n 16 --seed 0 --out samples
  t2i world suite --out suite.jsonl
  t2i world render-suite --suite suite.jsonl --out gt
  t2i world score gt --suite suite.jsonl
  t2i world boxes gt --out boxes.png
  t2i world detector-check --n 1000"""


def register(commands: argparse._SubParsersAction) -> None:
    w = commands.add_parser("world", help="the procedural shapes world", epilog=EXAMPLE, formatter_class=FORMATTER)
    w.set_defaults(handler=world_command)
    ws = w.add_subparsers(dest="world_command", required=True, metavar="WORLD_COMMAND")
    s = ws.add_parser("sample", help="write scenes: images, captions and a contact sheet",
                      epilog="example:\n  t2i world sample --n 16 --seed 0 --out samples", formatter_class=FORMATTER)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--out", type=Path, required=True)
    d = ws.add_parser("dataset", help="write training shards",
                      epilog="example:\n  t2i world dataset --n 20000 --seed 0 --out data/shapes",
                      formatter_class=FORMATTER)
    d.add_argument("--n", type=int, required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--size", type=int, default=64)
    d.add_argument("--shard-size", type=int, default=1000)
    d.add_argument("--out", type=Path, required=True)
    su = ws.add_parser("suite", help="write a GenEval-style suite of shapes-world prompts",
                       epilog="example:\n  t2i world suite --per-task 64 --seed 0 --out suite.jsonl",
                       formatter_class=FORMATTER)
    su.add_argument("--per-task", type=int, default=64)
    su.add_argument("--seed", type=int, default=0)
    su.add_argument("--out", type=Path, required=True)
    r = ws.add_parser("render-suite", help="render each suite line's ground-truth scene (GenEval layout)",
                      epilog="example:\n  t2i world render-suite --suite suite.jsonl --out gt",
                      formatter_class=FORMATTER)
    r.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    r.add_argument("--size", type=int, default=64)
    r.add_argument("--images-per-prompt", type=int, default=1)
    r.add_argument("--out", type=Path, required=True)
    sc = ws.add_parser("score", help="score a folder of images (GenEval layout) against a suite",
                       epilog="example:\n  t2i world score gt --suite suite.jsonl", formatter_class=FORMATTER)
    sc.add_argument("folder", type=Path)
    sc.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    sc.add_argument("--size", type=size_arg, help="expected image size WxH; other sizes count as wrong")
    sc.add_argument("--results", type=Path, help="per-image results (default FOLDER/results.jsonl)")
    b = ws.add_parser("boxes", help="draw the detector's boxes over images (a contact sheet)",
                      epilog="example:\n  t2i world boxes gt --out boxes.png", formatter_class=FORMATTER)
    b.add_argument("inputs", type=Path, nargs="+", help="images or folders (searched recursively for .png)")
    b.add_argument("--limit", type=int, default=64)
    b.add_argument("--columns", type=int, help="tiles per row (default: a square sheet); e.g. one row per model")
    b.add_argument("--out", type=Path, required=True)
    dc = ws.add_parser("detector-check", help="measure the detector on fresh renders, clean and degraded",
                       epilog="example:\n  t2i world detector-check --n 1000", formatter_class=FORMATTER)
    dc.add_argument("--n", type=int, default=1000)
    dc.add_argument("--seed", type=int, default=1_000_000)
    dc.add_argument("--size", type=int, default=64)


def world_command(args: argparse.Namespace) -> int:
    cmd = args.world_command
    if cmd == "sample":
        return _world_sample(args)
    if cmd == "dataset":
        from t2i.world.dataset import write_dataset

        print(write_dataset(args.out, args.n, args.seed, args.size, args.shard_size, progress=True))
        return 0
    if cmd == "suite":
        from t2i.world.suite import build_suite, write_suite

        lines = build_suite(args.per_task, args.seed)
        write_suite(lines, args.out)
        print(f"{len(lines)} lines -> {args.out}")
        return 0
    if cmd == "render-suite":
        from t2i.world.suite import render_suite

        lines = load_suite(args.suite)
        if args.out.is_dir() and any(args.out.iterdir()):
            raise FileExistsError(f"{args.out} is not empty; t2i never overwrites (give a new or empty folder)")
        n = render_suite(lines, args.out, args.size, args.images_per_prompt)
        print(f"{n} images -> {args.out}")
        return 0
    if cmd == "score":
        return _world_score(args)
    if cmd == "boxes":
        return _world_boxes(args)
    if cmd == "detector-check":
        from t2i.world.checks import detector_accuracy

        for degraded in (False, True):
            print(detector_accuracy(args.n, args.seed, args.size, degraded, progress=True).line())
        return 0
    raise ValueError(f"unknown world command {cmd!r}")


def _world_sample(args: argparse.Namespace) -> int:
    from t2i.outputs import check_free, save_png_atomic, write_new_text
    from t2i.world.captions import captions
    from t2i.world.draw import render_scene
    from t2i.world.scene import scene_for_seed
    from t2i.world.sheet import contact_sheet

    if args.n < 1:
        raise ValueError("--n must be at least 1")
    names = [f"{k:05d}.png" for k in range(args.n)]
    check_free([args.out / name for name in (*names, "captions.jsonl", "contact_sheet.png")])
    images, tags, records = [], [], []
    for k, name in enumerate(names):
        seed = args.seed + k
        scene = scene_for_seed(seed)
        caps = captions(scene, random.Random(seed ^ 0x5EED))
        img = render_scene(scene, args.size)
        save_png_atomic(img, args.out / name)
        images.append(img)
        tags.append(caps.natural)
        records.append(json.dumps({"file": name, "seed": seed, "tags": caps.tags, "natural": caps.natural,
                                   "canvas": caps.canvas, "scene": scene.to_dict()}) + "\n")
    write_new_text(args.out / "captions.jsonl", "".join(records))
    save_png_atomic(contact_sheet(images, tags), args.out / "contact_sheet.png")
    print(f"{args.n} scenes -> {args.out} (captions.jsonl, contact_sheet.png)")
    return 0


def _world_score(args: argparse.Namespace) -> int:
    from t2i.outputs import replace_file, write_new_text
    from t2i.world.suite import score_folder

    if args.results is not None and os.path.lexists(args.results):  # before scoring, not after
        raise FileExistsError(f"{args.results} already exists; t2i never overwrites (choose another --results)")
    result = score_folder(args.folder, load_suite(args.suite), args.size, progress=True)
    text = "".join(json.dumps(v.to_dict()) + "\n" for v in result.verdicts)
    if args.results is not None:
        out = write_new_text(args.results, text)
    else:  # the folder's own record of its latest scoring, replaced atomically
        out = replace_file(args.folder / "results.jsonl", text)
    for problem in result.problems:
        print(f"warning: {printable(problem)}", file=sys.stderr)
    print(result.table())
    print(f"per-image results -> {out}")
    return 0


def _world_boxes(args: argparse.Namespace) -> int:
    from PIL import Image

    from t2i.outputs import check_free, save_png_atomic
    from t2i.world.detector import detect, load_rgb
    from t2i.world.sheet import contact_sheet, draw_detections

    if args.out.suffix.lower() != ".png":
        raise ValueError(f"{args.out}: the contact sheet is a .png file")
    check_free([args.out])

    files: list[Path] = []
    for p in args.inputs:
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.png") if q.resolve() != args.out.resolve())
        elif os.path.lexists(p):  # a file; anything else is refused by the image reader
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    if not files:
        raise ValueError(f"no .png images in {', '.join(map(str, args.inputs))}")
    files = files[: args.limit]
    tiles, labels = [], []
    for f in files:
        arr = load_rgb(f)
        img = Image.fromarray((arr * 255).round().astype("uint8"))
        dets = detect(arr)
        tiles.append(draw_detections(img, dets, scale=max(1.0, 160 / max(img.size))))
        name = f"{f.parent.parent.name}/{f.name}" if f.parent.name == "samples" else f.name
        labels.append(f"{name}: " + ", ".join(f"{d.color} {d.shape}" for d in dets))
    if args.columns is not None and args.columns < 1:
        raise ValueError(f"--columns must be at least 1, got {args.columns}")
    save_png_atomic(contact_sheet(tiles, labels, columns=args.columns), args.out)
    print(f"{len(files)} images -> {args.out}")
    return 0
