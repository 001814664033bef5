"""`t2i eval` (generate a suite with a pipeline and score it) and `t2i compare` (two runs, line by line)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from t2i.cli.common import FORMATTER, load_suite, quiet_libraries, size_arg
from t2i.cli.pipeline_flags import add_pipeline_flags, apply_pipeline_flags


def register(commands: argparse._SubParsersAction) -> None:
    e = commands.add_parser("eval", help="generate a suite with a model (GenEval layout, resumable) and score it",
                            epilog="example:\n  t2i eval --model shapes-xl --out runs/eval-shapes-xl",
                            formatter_class=FORMATTER)
    e.add_argument("--suite", type=Path, help="suite file (default: the built-in shapes suite)")
    e.add_argument("--model", "-m", default="shapes-xl")
    e.add_argument("--images-per-prompt", type=int, default=1)
    e.add_argument("--seed", type=int, default=0, help="image k of line i uses seed + i*K + k")
    e.add_argument("--size", type=size_arg, help="WxH (default: the model's; --hires images are scored at the "
                                                 "larger size)")
    add_pipeline_flags(e, "render", "presample", "compose")
    e.add_argument("--gt-program", action="store_true",
                   help="render each line's own scene as a Canvas program (the renderer alone)")
    e.add_argument("--out", type=Path, required=True)
    e.set_defaults(handler=eval_command)

    c = commands.add_parser("compare", help="two models' eval runs line by line: the score difference and its "
                                            "paired standard error",
                            epilog="example (suite seeds 0 and 1 of each model):\n  t2i compare --a runs/eval-a-s0 "
                                   "runs/eval-a-s1 --b runs/eval-b-s0 runs/eval-b-s1", formatter_class=FORMATTER)
    c.add_argument("--a", type=Path, nargs="+", required=True, metavar="DIR", help="model A's `t2i eval` folders")
    c.add_argument("--b", type=Path, nargs="+", required=True, metavar="DIR",
                   help="model B's, in the same order (each from the same suite, seed and images per prompt)")
    c.add_argument("--images", action="store_true",
                   help="also how alike the images are: PSNR of each of B's images against A's (e.g. a student "
                        "against its teacher)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(handler=compare_command)


# the request fields an eval run sets for every line (the prompt, model and seed are the runner's)
SETTINGS = ("negative_prompt", "steps", "guidance", "sampler", "width", "height", "model_options", "presample",
            "compose")


def eval_command(args: argparse.Namespace) -> int:
    from t2i.backends import default_registry
    from t2i.composition_plan import may_compose
    from t2i.evaluation.runner import ground_truth_program, run_suite
    from t2i.types import GenerationRequest

    quiet_libraries()
    if args.compose in ("auto", "on") and args.gt_program:
        raise ValueError("give --compose (an LLM writes programs) or --gt-program (the scenes' own), not both")
    blank = GenerationRequest(prompt="-", model=args.model)
    request = blank.with_(width=args.size[0], height=args.size[1]) if args.size is not None else blank
    request = apply_pipeline_flags(request, args, "render", "presample", "compose")
    settings = {k: getattr(request, k) for k in SETTINGS if getattr(request, k) != getattr(blank, k)}
    registry = args.registry or default_registry()
    presampler = composer = None
    llm_options = dict(args.llm_option)
    if request.presample.enabled:
        from t2i.stages import open_presampler

        presampler = open_presampler(request.presample.model, registry, llm_options)
    if not args.gt_program and may_compose(request, registry.resolve(args.model).spec.defaults, args.model):
        from t2i.stages import open_composer

        composer = open_composer(request.compose.model, registry, llm_options)
    run = run_suite(load_suite(args.suite), registry, args.model, args.out, args.images_per_prompt, args.seed,
                    settings, progress=True, program_for=ground_truth_program if args.gt_program else None,
                    presampler=presampler, composer=composer)
    for problem in run.score.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(run.score.table())
    print(f"{run.generated} images generated in {run.seconds:.0f} s; results in {args.out}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from t2i.evaluation.compare import compare_runs, format_comparison

    result = compare_runs(args.a, args.b, images=args.images)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_comparison(result))
    return 0
