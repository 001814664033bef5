"""KOALA-700M / KOALA-1B U-Nets against SDXL-base's, built from the real configurations with random weights.

    python bench/koala_unet_latency.py [--latent 32] [--repeats 3]
    python bench/koala_unet_latency.py --smoke    (narrow widths, same depths; seconds, for the tests)

Builds each U-Net (parameter counts must equal the published ones), runs one forward pass at a
CPU-sized latent (32x32 = a 256x256 image) with batch 2 (classifier-free guidance), and prints the
median latency and its ratio to SDXL-base's.  The KOALA card's RTX 4090 figures (FP16, 1024 px)
give 1.257 s / 3.133 s = 0.40 for KOALA-700M and 1.604 / 3.133 = 0.51 for KOALA-1B.
With --smoke the three keep their block and transformer depths but get narrow widths (channels 32/64/128,
32-wide text), so the published parameter counts are not checked; the ratios then say little.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch
from diffusers import UNet2DConditionModel

from t2i.unet.published import published_parameters, unet_config


@torch.no_grad()
def measure(name: str, latent: int, repeats: int, narrow: bool = False) -> tuple[int, float]:
    config, published = unet_config(name, narrow), published_parameters(name)
    unet = UNet2DConditionModel(**config).eval()
    n = sum(p.numel() for p in unet.parameters())
    if n != published and not narrow:
        raise SystemExit(f"{name}: {n:,} parameters, published {published:,}: the configuration is wrong")
    b = 2
    text = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
    x = torch.randn(b, 4, latent, latent)
    t = torch.tensor([500] * b)
    ctx = torch.randn(b, 77, config["cross_attention_dim"])
    cond = {"text_embeds": torch.randn(b, text), "time_ids": torch.tensor([[latent * 8] * 2 + [0, 0] + [latent * 8] * 2]
                                                                          * b, dtype=torch.float32)}
    unet(x, t, ctx, added_cond_kwargs=cond)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        unet(x, t, ctx, added_cond_kwargs=cond)
        times.append(time.perf_counter() - t0)
    del unet
    gc.collect()
    return n, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="narrow widths, latent 8, 1 repeat (seconds)")
    args = ap.parse_args()
    if args.smoke:
        args.latent, args.repeats = 8, 1
    torch.manual_seed(0)
    results = {name: measure(name, args.latent, args.repeats, args.smoke)
               for name in ("koala-700m", "koala-1b", "sdxl-base")}
    base = results["sdxl-base"][1]
    print(f"U-Net forward, batch 2, latent {args.latent}x{args.latent}, float32, {torch.get_num_threads()} threads"
          + (", narrow widths (smoke)" if args.smoke else ""))
    for name, (n, sec) in results.items():
        print(f"{name:<11} {n:>13,} params  {sec:7.3f} s  ratio to sdxl-base {sec / base:.2f}")


if __name__ == "__main__":
    main()
