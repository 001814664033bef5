"""Our SDXL backend's overhead over a bare diffusers pipeline call with the same settings.

    python bench/backend_overhead.py [--model shapes-xl] [--repeats 10] [--steps 25]
    python bench/backend_overhead.py --smoke      (2 steps, 2 calls each: seconds, for the tests)

Both paths use the same loaded pipeline, prompt, seed, steps, guidance and size; calls alternate so
that machine noise hits both alike.  Prints median seconds per image and the ratio (goal <= 1.03).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from t2i.backends import default_registry
from t2i.generate import generate
from t2i.types import ComposeOptions, GenerationRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-xl")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--smoke", action="store_true", help="the tiniest run (2 steps, 2 calls each)")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.repeats = 2, 2
    registry = default_registry()
    _, backend = registry.load(args.model)
    # the bare call's computation exactly: no default option that changes the guidance (empty_negative)
    request = GenerationRequest("a red circle above a blue square", model=args.model, seed=1, steps=args.steps,
                                guidance=2.0, width=64, height=64, sampler="euler",
                                model_options={"empty_negative": 0}, compose=ComposeOptions(enabled=False))
    pipe = backend.pipe

    def bare() -> None:
        pipe(prompt=request.prompt, negative_prompt=None, num_inference_steps=args.steps, guidance_scale=2.0,
             height=64, width=64, generator=[torch.Generator("cpu").manual_seed(1)], output_type="np")

    def ours() -> None:
        generate(request, registry, backend=backend)

    bare()
    ours()  # warm-up both
    t_bare, t_ours = [], []
    for _ in range(args.repeats):
        for fn, acc in ((bare, t_bare), (ours, t_ours)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    b, o = statistics.median(t_bare), statistics.median(t_ours)
    print(f"{args.model}, {args.steps} steps, 64x64, {args.repeats} alternating calls each")
    print(f"bare pipeline {b:.4f} s   t2i backend {o:.4f} s   ratio {o / b:.3f}")


if __name__ == "__main__":
    main()
