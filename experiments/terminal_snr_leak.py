"""How much of the image a U-Net reads out of x_T: the noise-schedule flaw of Lin et al. 2024 on shapes world.

    python experiments/terminal_snr_leak.py [--model shapes-xl] [--n 256] [--timesteps 999,961,800,500]
    python experiments/terminal_snr_leak.py --smoke   (4 renders, 2 timesteps: seconds, for the tests)

Shapes-world renders are encoded by the model's own VAE, noised to timestep t with the model's own
schedule, and the U-Net predicts the clean latent with no text at all (zero embeddings: the unconditional
branch). Printed per timestep: the correlation across images between the true and the predicted latent
mean of each channel, averaged over channels (which carry the background colour). At the first sampling step a
model should have nothing to read (correlation about 0); a schedule whose last step keeps some signal
(SDXL's: 0.068 x0 at t = 999) lets the U-Net learn to read it, and at sampling time, from pure noise, the
colours then follow the noise instead of the prompt.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from t2i.backends import default_registry
from t2i.train.diffusion import alphas_cumprod, noised
from t2i.world.dataset import make_sample, sample_seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-xl")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--timesteps", default="999,961,800,500")
    ap.add_argument("--smoke", action="store_true", help="the tiniest run: 4 renders, timesteps 999 and 500")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.timesteps = 4, "999,500"
    if args.n < 2:
        raise SystemExit("--n must be at least 2 (a correlation across images needs two)")
    _, backend = default_registry().load(args.model, {"dtype": "float32", "device": "cpu"})
    pipe = backend.pipe
    config = dict(pipe.scheduler.config)
    alphas = alphas_cumprod(config)
    kind = config["prediction_type"]
    images = np.stack([make_sample(sample_seed(args.seed, i))[0] for i in range(args.n)])  # (N, 64, 64, 3) uint8
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        x0 = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor  # (N, 4, h, w)
        unet = pipe.unet
        n = len(x0)
        emb = torch.zeros(n, 77, unet.config.cross_attention_dim)
        pooled = torch.zeros(n, unet.config.projection_class_embeddings_input_dim
                             - 6 * unet.config.addition_time_embed_dim)
        time_ids = torch.tensor([[64, 64, 0, 0, 64, 64]], dtype=torch.float32).expand(n, -1)
        print(f"{args.model}: {kind}, zero terminal SNR {bool(config.get('rescale_betas_zero_snr'))}, "
              f"{n} renders, no text")
        for t_value in (int(s) for s in args.timesteps.split(",")):
            t = torch.full((n,), t_value)
            xt = noised(alphas, x0, torch.randn(x0.shape, generator=g), t)
            out = unet(xt, t, emb, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
            a = alphas[t_value]
            x0_hat = a.sqrt() * xt - (1 - a).sqrt() * out if kind == "v_prediction" else \
                (xt - (1 - a).sqrt() * out) / a.sqrt()
            true_means, got_means = x0.mean(dim=(2, 3)).numpy(), x0_hat.mean(dim=(2, 3)).numpy()  # (N, C)
            # per channel, across images (channels differ in their average, which says nothing of the image)
            corr = float(np.mean([np.corrcoef(true_means[:, c], got_means[:, c])[0, 1]
                                  for c in range(true_means.shape[1])]))
            print(f"t={t_value:4d}  sqrt(alpha_bar)={a.sqrt().item():.4f}  corr(true, predicted means)={corr:.3f}")


if __name__ == "__main__":
    main()
