"""`t2i generate`, `t2i presample`, `t2i compose` and `t2i info`: one image request and its stages."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from t2i.cli.common import FORMATTER, LLM_OPTION_HELP, numbered, option_arg, printable, quiet_libraries, size_arg
from t2i.cli.pipeline_flags import add_option, add_pipeline_flags, apply_pipeline_flags
from t2i.pipeline_options import options_in

EXAMPLES = {
    "generate": """examples:
  t2i generate "a red circle above a blue square" --seed 42
  t2i generate "two yellow stars" --n 4 --out stars/
  t2i generate "red circle" --presample          # a TIPO model expands the prompt first
  t2i generate --from outputs/2026-11-23/00000-42.png   # reproduce an image from its metadata""",
    "compose": """examples:
  t2i compose "a red circle above a blue square"
  t2i compose "a red circle above a blue square" --edit "now make the square green"
  t2i compose "a cat on a sofa" --model http://127.0.0.1:8080/v1""",
    "presample": """examples:
  t2i presample "red circle"
  t2i presample "a red circle above a blue square" --seed 3 --json
  t2i presample "1girl, (long hair:1.2)" --model tipo-500m-ft --llm-option backend=llama.cpp
  t2i presample "red circle" --model http://127.0.0.1:8080/v1""",
    "info": """example:
  t2i info outputs/2026-11-23/00000-42.png""",
}
MAX_PROGRAM_BYTES = 400_000  # a Canvas program file (the request keeps at most 100,000 characters)


def register(commands: argparse._SubParsersAction) -> None:
    g = commands.add_parser("generate", help="generate images from a prompt", epilog=EXAMPLES["generate"],
                            formatter_class=FORMATTER)
    g.add_argument("prompt", nargs="?", help="what to draw; prompts joined by AND (\"a red circle AND a blue "
                   "square :0.5\") are composed by summing their guidance (composable diffusion; weight after a "
                   "colon, default 1)")
    g.add_argument("--from", dest="from_image", type=Path, metavar="IMAGE",
                   help="replay the request stored in a t2i image (bit for bit on the same machine)")
    g.add_argument("--model", "-m", help="registered name, hub id or local folder/file (default shapes-xl)")
    g.add_argument("--seed", type=int, help="seed of the first image; image k uses seed+k (default: random)")
    g.add_argument("--size", type=size_arg, help="WxH (default: the model's)")
    g.add_argument("--n", type=int, help="number of images (default 1)")
    add_pipeline_flags(g, "render", "presample", "compose")
    g.add_argument("--program", type=Path, metavar="FILE",
                   help="render this Canvas program (parsed, never executed) instead of asking an LLM")
    g.add_argument("--out", help="output file (.png) or folder (default outputs/YYYY-MM-DD/; a name ending in / is "
                                 "a folder)")
    g.add_argument("--max-pixels", type=int, metavar="N",
                   help="pixels one call may draw, width x height x n (hi-res fix counted at its size); default: "
                        "the model's (1,048,576 for the shipped models, 4,194,304 for SDXL/KOALA)")
    g.add_argument("--outputs-root", type=Path, default=Path("outputs"), help=argparse.SUPPRESS)
    g.set_defaults(handler=generate_command)

    co = commands.add_parser("compose", help="an LLM writes an Omost Canvas program; print it, save a preview",
                             epilog=EXAMPLES["compose"], formatter_class=FORMATTER)
    co.add_argument("prompt")
    co.add_argument("--model", dest="compose_model", help="composer (default omost-tiny)")
    co.add_argument("--seed", type=int, default=12345)
    co.add_argument("--edit", action="append", default=[], metavar="INSTRUCTION",
                    help="then edit the canvas with this instruction (repeatable: one round each)")
    co.add_argument("--preview", type=Path, help="preview PNG (default outputs/YYYY-MM-DD/canvas-NNNNN.png)")
    co.add_argument("--llm-option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                    help=LLM_OPTION_HELP)
    co.set_defaults(handler=compose_command)

    ps = commands.add_parser("presample", help="expand a prompt with a TIPO model and print it",
                             epilog=EXAMPLES["presample"], formatter_class=FORMATTER)
    ps.add_argument("prompt", nargs="?", default="",
                    help="tags and/or sentences (a comma-separated part of 3+ words starting with a/an/the, "
                         "6+ words, or ending with '.' is a sentence); empty: TIPO writes from nothing")
    ps.add_argument("--tags", help="tags, given apart (then PROMPT is not split)")
    ps.add_argument("--nl", help="natural language, given apart")
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--size", type=size_arg, help="WxH of the image to come (sent as aspect_ratio)")
    ps.add_argument("--ban", action="append", default=[], metavar="TEXT_OR_REGEX",
                    help="remove generated tags/sentences that contain or match this (repeatable)")
    ps.add_argument("--json", action="store_true", help="print the whole expansion as JSON")
    for option in options_in("presample"):  # the same settings, named without "presample-" here
        if option.type is not bool:
            add_option(ps, option, name=option.name.removeprefix("presample-"))
    ps.add_argument("--llm-option", type=option_arg, action="append", default=[], metavar="KEY=VALUE",
                    help=LLM_OPTION_HELP)
    ps.set_defaults(handler=presample_command)

    i = commands.add_parser("info", help="print the generation metadata of an image", epilog=EXAMPLES["info"],
                            formatter_class=FORMATTER)
    i.add_argument("image", type=Path)
    i.set_defaults(handler=info_command)


def compose_command(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.outputs import check_free, save_png_atomic
    from t2i.stages import open_composer

    quiet_libraries()
    if args.preview is not None:
        check_free([args.preview])  # before the model writes anything
    registry = args.registry or default_registry()
    composer = open_composer(args.compose_model, registry, dict(args.llm_option))
    out = composer.compose(args.prompt, seed=args.seed)
    for k, instruction in enumerate(args.edit, start=1):
        out = composer.compose(instruction, history=out.messages[1:], seed=args.seed + k)
    for w in out.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    print(printable(out.program))
    path = args.preview or numbered(Path("outputs") / datetime.date.today().isoformat(), "canvas", ".png")
    save_png_atomic(out.canvas.process().preview(), path)
    print(f"preview: {path}", file=sys.stderr)
    return 0


def presample_command(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.stages import open_presampler, presample
    from t2i.types import GenerationRequest, PresampleOptions

    quiet_libraries()
    registry = args.registry or default_registry()
    presampler = open_presampler(args.presample_model, registry, dict(args.llm_option), ban=tuple(args.ban))
    opts = PresampleOptions(enabled=True, model=args.presample_model, seed=args.seed, target=args.presample_target,
                            temperature=args.presample_temperature, format=args.presample_format)
    width, height = args.size if args.size else (None, None)
    request = GenerationRequest(prompt=args.prompt, width=width, height=height, seed=args.seed, presample=opts)
    apart = args.tags is not None or args.nl is not None
    tags = [t for t in (args.tags, args.prompt) if t] if apart else None
    exp = presample(request, presampler, tags=tags, nl=args.nl if apart else None)
    for w in exp.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    print(json.dumps(exp.to_dict(), indent=2, ensure_ascii=False) if args.json else printable(exp.prompt))
    return 0


def _request(args: argparse.Namespace, registry):
    """The request the flags describe: a replayed image's (checked as untrusted) or a new one, with every
    flag given set on it."""
    from t2i.metadata import read_image_metadata, replay_request
    from t2i.types import GenerationRequest

    if args.from_image is not None:
        from t2i.replay import check_untrusted_request

        if args.prompt:
            raise ValueError("give either a prompt or --from IMAGE, not both")
        request = replay_request(read_image_metadata(args.from_image))
        given = {k for k, v in (("model", args.model), ("presample_model", args.presample_model),
                                ("compose_model", args.compose_model)) if v is not None}
        check_untrusted_request(request, registry, str(args.from_image), given | {k for k, _ in args.option})
    elif not args.prompt or not args.prompt.strip():
        raise ValueError("a prompt is required (or --from IMAGE)")
    else:
        request = GenerationRequest(prompt=args.prompt)
    changes: dict = {k: v for k, v in (("model", args.model), ("seed", args.seed), ("n_images", args.n))
                     if v is not None}
    if args.size is not None:
        changes["width"], changes["height"] = args.size
    if args.program is not None:
        from dataclasses import replace

        from t2i.userfiles import read_user_text

        program = read_user_text(args.program, MAX_PROGRAM_BYTES)
        changes["compose"] = replace(request.compose, enabled=True, program=program)
    if changes:
        request = request.with_(**changes)
    return apply_pipeline_flags(request, args, "render", "presample", "compose")


def generate_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from t2i.backends import default_registry
    from t2i.cancel import Cancelled
    from t2i.composition_plan import plan_composition
    from t2i.generate import check_request, generate, save_result
    from t2i.licences import licence_notice_once
    from t2i.limits import Limits
    from t2i.outputs import OutputWriter

    quiet_libraries()
    registry = args.registry or default_registry()
    request = _request(args, registry)

    # 1. whether to compose (the model's defaults for the prompt's class), then everything that can fail is
    # checked before a model is loaded or an image drawn
    limits = Limits(max_pixels=args.max_pixels)
    spec = registry.resolve(request.model).spec
    request, plan_warning = plan_composition(request, spec.defaults, spec.name)
    if plan_warning:
        print(f"warning: {printable(plan_warning)}", file=sys.stderr)
    elif request.compose.decision:
        print(f"compose: {printable(request.compose.decision)}", file=sys.stderr)
    check_request(request, spec, limits)
    writer = OutputWriter(root=args.outputs_root, out=args.out, n_images=request.n_images)
    writer.check_batch()
    notice = licence_notice_once(spec)
    if notice:
        print(notice, file=sys.stderr)
    bars: list[tqdm] = []  # made at the first step, when its total is known (no "0step" line before it)

    def step(i: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="generating", unit="step", file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(i - bar.n)

    # 2. the language models, then the images
    presampler = composer = None
    if request.presample.enabled:
        from t2i.stages import open_presampler

        presampler = open_presampler(request.presample.model, registry, dict(args.llm_option))
    if request.compose.enabled and request.compose.program is None:
        from t2i.stages import open_composer

        composer = open_composer(request.compose.model, registry, dict(args.llm_option))
    try:
        result = generate(request, registry, callback=step, presampler=presampler, composer=composer, limits=limits)
    except Cancelled:
        print("cancelled; nothing was written", file=sys.stderr)
        return 130
    finally:
        for bar in bars:
            bar.close()
    for w in result.warnings:
        print(f"warning: {printable(w)}", file=sys.stderr)
    if result.presampled_prompt is not None:
        print(f"presampled prompt: {printable(result.presampled_prompt)}", file=sys.stderr)
    # 3. saved one by one; an interruption names what is already on disk
    written: list[Path] = []
    try:
        save_result(result, writer, written)
    except BaseException:
        if written:
            print(f"stopped after writing {len(written)} of {len(result.images)} images:", file=sys.stderr)
            for path in written:
                print(path)
        raise
    for path in written:
        print(path)
    return 0


def info_command(args: argparse.Namespace) -> int:
    """The image's A1111 text as written (what A1111's "read generation parameters" takes), then its t2i record
    in sections of aligned keys."""
    from t2i.metadata import read_image_metadata

    meta = read_image_metadata(args.image)
    if meta.parameters is None and meta.request is None:
        raise ValueError(f"{args.image}: no generation metadata")
    if meta.parameters:
        print(printable(meta.parameters))  # an image's text may hold escape sequences: shown, never obeyed
    if meta.request is not None:
        if meta.parameters:
            print()
        print(_info_text(meta))
    return 0


def _info_text(meta) -> str:
    """`t2i info`'s sections for an image's t2i record (`meta.request` is set): each a title, then its keys
    aligned; every value made printable, a value's further lines indented under its first."""
    from dataclasses import fields

    from t2i.metadata import a1111_sampler

    def shown(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value) if value != "" else "(empty)"

    request = meta.request
    image = [("seed", meta.seed), ("index", f"{meta.index} (image {meta.index + 1} of its batch)"),
             ("prompt used", meta.prompt_used), ("negative used", meta.negative_prompt_used)]
    sampler = request.sampler
    if sampler is not None:
        name, schedule = a1111_sampler(sampler)
        a1111 = name if schedule is None else f"{name}, schedule type {schedule}"
        sampler = sampler if a1111 == sampler else f"{sampler} (A1111: {a1111})"
    size = f"{request.width}x{request.height}" if request.width is not None and request.height is not None else None
    options = ", ".join(f"{k}={shown(v)}" for k, v in sorted(request.model_options.items())) or "-"
    sections = [
        ("image", image),
        ("request", [("model", request.model), ("prompt", request.prompt),
                     ("negative prompt", request.negative_prompt), ("seed", request.seed),
                     ("images", request.n_images), ("steps", request.steps), ("guidance", request.guidance),
                     ("size", size), ("sampler", sampler), ("options", options)]),
    ]
    for title, part in (("presample", request.presample), ("compose", request.compose)):
        if part.enabled:  # on (or compose "auto", undecided): every setting
            sections.append((title, [(f.name, getattr(part, f.name)) for f in fields(part)]))
        else:
            decision = getattr(part, "decision", None)
            sections[1][1].append((title, "off" if decision is None else f"off ({decision})"))
    if meta.versions is None and meta.device is None and meta.dtype is None:
        runtime = [("recorded", "no (written before t2i recorded versions, device and dtype)")]
    else:
        versions = meta.versions or {}
        runtime = [(k, "not installed" if v is None else v) for k, v in versions.items()]
        runtime += [("device", meta.device or "unknown"), ("dtype", meta.dtype or "unknown")]
    sections.append(("runtime", runtime))
    if meta.extras:
        sections.append(("extras", list(meta.extras.items())))

    sections = [(title, [(printable(key), value) for key, value in rows]) for title, rows in sections]
    width = max(len(key) for _, rows in sections for key, _ in rows) + 2
    lines: list[str] = []
    for title, rows in sections:
        lines += [title] if not lines else ["", title]
        for key, value in rows:
            first, *rest = printable(shown(value)).split("\n")
            lines.append(f"  {key:<{width}}{first}".rstrip())
            lines.extend(f"  {'':<{width}}{line}".rstrip() for line in rest)
    return "\n".join(lines)
