"""Cost of Omost's regional attention: one U-Net forward of the real KOALA-700M shape (random weights).

    python bench/regional_attention.py [--latent 32] [--repeats 3]
    python bench/regional_attention.py --smoke    (narrow widths, same depths; seconds, for the tests)

Three ways over the same conditioning (3 regions = 3 x 77 tokens, batch 2 = negative + positive):
ordinary attention over the concatenated tokens (diffusers' AttnProcessor2_0), our regional
processors (scaled keys + additive mask in fused attention), and a reference-style implementation that
materialises the full score matrix.  Runs alternate, in a rotating order; prints median seconds of the
whole forward and of its cross-attention layers alone (where the three differ), and the ratios (goal:
regional / ordinary <= 1.15; regional faster than materialised).  With --smoke the U-Net keeps its depths but
gets narrow widths (channels 32/64/128, 32-wide text), and the parameter count is not checked.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from t2i.render.attention import MaterialisedRegionalAttnProcessor, RegionalAttnProcessor, RegionalState
from t2i.unet.published import published_parameters, unet_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="narrow widths, latent 8, 1 repeat (seconds)")
    args = ap.parse_args()
    if args.smoke:
        args.latent, args.repeats = 8, 1
    torch.manual_seed(0)
    config = unet_config("koala-700m", narrow=args.smoke)  # KOALA-700M's U-Net (Lee et al. 2023)
    unet = UNet2DConditionModel(**config).eval()
    n, published = sum(p.numel() for p in unet.parameters()), published_parameters("koala-700m")
    if n != published and not args.smoke:
        raise SystemExit(f"KOALA-700M: {n:,} parameters, published {published:,}: the configuration is wrong")
    text = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
    s = args.latent
    masks = torch.zeros(3, s, s)
    masks[0] = 1
    masks[1, :, : s // 2] = 1
    masks[2, s // 4: 3 * s // 4, s // 2:] = 1
    state = RegionalState(torch.arange(3).repeat_interleave(77), masks, cfg=True)
    b = 2
    x = torch.randn(b, 4, s, s)
    t = torch.tensor([500] * b)
    ctx = torch.randn(b, 3 * 77, config["cross_attention_dim"])
    cond = {"text_embeds": torch.randn(b, text),
            "time_ids": torch.tensor([[s * 8, s * 8, 0, 0, s * 8, s * 8]] * b, dtype=torch.float32)}
    names = list(unet.attn_processors)

    def use(kind: str) -> Timed:
        cross = Timed({"ordinary": AttnProcessor2_0(), "regional": RegionalAttnProcessor(state),
                       "materialised": MaterialisedRegionalAttnProcessor(state)}[kind])
        unet.set_attn_processor({n: cross if n.endswith("attn2.processor") else AttnProcessor2_0() for n in names})
        return cross

    times: dict[str, list[float]] = {"ordinary": [], "regional": [], "materialised": []}
    cross_times: dict[str, list[float]] = {k: [] for k in times}
    with torch.no_grad():
        for kind in times:  # warm-up (and mask caches)
            use(kind)
            unet(x, t, ctx, added_cond_kwargs=cond)
        kinds = list(times)
        for r in range(args.repeats):  # the order rotates, so no way always runs first
            for kind in kinds[r % 3:] + kinds[: r % 3]:
                timed = use(kind)
                t0 = time.perf_counter()
                unet(x, t, ctx, added_cond_kwargs=cond)
                times[kind].append(time.perf_counter() - t0)
                cross_times[kind].append(timed.seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    cross = {k: statistics.median(v) for k, v in cross_times.items()}
    print(f"KOALA-700M U-Net forward, batch 2, latent {s}x{s}, 3 regions x 77 tokens, float32, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}"
          + (", narrow widths (smoke)" if args.smoke else ""))
    print(f"{'':<13} {'forward':>9} {'cross-attention layers alone':>30}")
    for k in times:
        print(f"{k:<13} {med[k]:8.3f}s {cross[k]:29.3f}s")
    print(f"regional / ordinary     {med['regional'] / med['ordinary']:.3f}  (goal <= 1.15)   "
          f"layers alone {cross['regional'] / cross['ordinary']:.3f}")
    print(f"regional / materialised {med['regional'] / med['materialised']:.3f}  (goal < 1)       "
          f"layers alone {cross['regional'] / cross['materialised']:.3f}")


class Timed:
    """A cross-attention processor that adds the seconds spent in it to `seconds` (one forward's total)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.inner(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        return out


if __name__ == "__main__":
    main()
