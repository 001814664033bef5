"""What presampling adds on shapes world (the TIPO card's experiment, shapes-world edition).

    python experiments/presample_world.py [--n 200] [--presampler tipo-tiny] [--model shapes-xl] [--out FILE.json]
                                    [--sampling temperature=1,top_p=1,top_k=0,min_p=0,repetition_penalty=1]
                                    [--compose [--region-text local]] [--option hires_scale=2 ...]
                                    [--target very_short|short|long|very_long] [--option excite=user]
                                    [--steps N]
    python experiments/presample_world.py --smoke   (2 prompts, 2-step images, 20 world scenes: seconds)

For n seeded one-tag prompts ("red circle"): an image from the bare prompt and one from its expansion
(same seed), the detector on both, and the total variation distance of object count, colour and place
(3x3 cell) to the world's own distributions (the detector on 1,000 rendered world scenes).  Also: how
often the user's object is found, and whether every expansion is valid shapes-world text naming it.
With --compose both arms go through the whole `--presample --compose` pipeline: the composer (omost-tiny)
writes a Canvas program for the bare prompt or the expansion, and the regional renderer draws it; a prompt
the composer writes no usable program for (after its one retry) is drawn from the plain prompt and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from t2i.backends import default_registry
from t2i.compose import CanvasError
from t2i.evaluation.presample_effect import one_tag_prompts, run_experiment, world_distributions
from t2i.generate import generate, resolve_request
from t2i.presample.targets import SAMPLING_KEYS
from t2i.stages import open_composer, open_presampler, user_subjects
from t2i.types import ComposeOptions, GenerationRequest


def parse_settings(text: str) -> dict:
    """"temperature=1,top_k=0" -> {"temperature": 1.0, "top_k": 0}: the keys and types a model's presample.json
    may set (`SAMPLING_KEYS`)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in SAMPLING_KEYS:
            raise SystemExit(f"--sampling: unknown setting {key!r}; known: {', '.join(SAMPLING_KEYS)}")
        out[key] = SAMPLING_KEYS[key](value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt draw")
    ap.add_argument("--model", default="shapes-xl")
    ap.add_argument("--presampler", default="tipo-tiny")
    ap.add_argument("--world", type=int, default=1000, help="rendered world scenes for the reference")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sampling", default="", help="LLM sampling settings over the presampler's own, k=v,...")
    ap.add_argument("--target", help="length target of every expansion (default: the presampler's own)")
    ap.add_argument("--compose", action="store_true", help="compose both arms' prompts and render them regionally")
    ap.add_argument("--region-text", default="omost", help="with --compose: what the regions read (as t2i generate)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a model option for every image of both arms, e.g. hires_scale=2")
    ap.add_argument("--steps", type=int, help="sampling steps of every image (default: the model's)")
    ap.add_argument("--smoke", action="store_true",
                    help="the tiniest run: 2 prompts, 2-step images, 20 world scenes for the reference")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.steps, args.world = 2, 2, 20
    options = dict(o.split("=", 1) for o in args.option)
    registry = default_registry()
    resolved, backend = registry.load(args.model)
    presampler = open_presampler(args.presampler, registry)
    presampler.settings = replace(presampler.settings, **parse_settings(args.sampling))

    composer = open_composer(None, registry) if args.compose else None

    prompts = one_tag_prompts(args.n, args.seed)  # (colour, shape); run_experiment draws prompt i with seed i
    failed: list[str] = []  # prompts the composer wrote no usable program for, even on its retry

    def draw(prompt: str, seed: int):
        if composer is not None:
            request = GenerationRequest(prompt, model=args.model, seed=seed, steps=args.steps,
                                        compose=ComposeOptions(enabled=True),
                                        model_options={**options, "region_text": args.region_text})
            try:
                return generate(request, registry, backend=backend, composer=composer).images[0]
            except CanvasError as e:  # drawn from the plain prompt instead, and counted
                failed.append(prompt)
                print(f"composer failed on {prompt!r} ({e}); drawn from the plain prompt", file=sys.stderr)
        # excite=user: the user's one-tag prompt's noun, in either arm (as `t2i generate --presample` resolves it)
        opts, _ = user_subjects(options, " ".join(prompts[seed]))
        request = resolve_request(GenerationRequest(prompt, model=args.model, seed=seed, steps=args.steps,
                                                    model_options=opts), resolved.spec)
        return backend.generate(request).images[0]

    def expand(prompt: str, seed: int):
        e = presampler.expand(prompt, seed=seed, target=args.target)
        return e.prompt, e.tags, " ".join(x for x in (e.extended, e.generated) if x)

    world = world_distributions(args.world, seed=12345)
    bar = tqdm(total=args.n, desc="prompts", file=sys.stderr)
    report = run_experiment(prompts, draw, expand, world, lambda i: bar.update(1))
    bar.close()
    report.update(model=args.model, presampler=args.presampler, sampling=asdict(presampler.settings),
                  compose={"region_text": args.region_text, "failed": failed} if args.compose else None,
                  options=options, target=args.target, steps=args.steps)
    print(f"{args.n} one-tag prompts, {args.model}, presampler {args.presampler}, {presampler.settings}"
          + (f", composed (region text {args.region_text})" if args.compose else "")
          + (f", options {options}" if options else "") + (f", target {args.target}" if args.target else "")
          + (f", {args.steps} steps" if args.steps else ""))
    print(f"{'total variation to the world':<30} {'bare':>8} {'expanded':>9}")
    for k in ("count", "color", "place"):
        print(f"{k:<30} {report['tv_bare'][k]:>8.3f} {report['tv_expanded'][k]:>9.3f}")
    f = report["user_object_found"]
    print(f"{'user object found':<30} {f['bare']:>8.3f} {f['expanded']:>9.3f}")
    print(f"expansions valid {report['expansions_valid']:.3f}, keep the user's object "
          f"{report['expansions_keep_object']:.3f}")
    if args.compose:
        print(f"composer failures (drawn from the plain prompt): {len(failed)} of {2 * args.n} prompts")
    for ex in report["examples"][:3]:
        print(f"  {ex['prompt']!r} -> {ex['expansion']!r}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
