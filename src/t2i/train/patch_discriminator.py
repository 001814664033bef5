"""A PatchGAN critic for sharpening an autoencoder's decoder, and the losses around it.

An L1 + MSE decoder answers an ambiguous patch with the mean of what could be there: on shapes world that rounds
a small star's five points into a blob the detector reads as a circle.  An adversarial term pays for patches that
look drawn rather than averaged.  The critic is the patch discriminator of pix2pix (Isola et al. 2017): strided
4x4 convolutions whose last map scores each receptive field (about 34x34 pixels here) as real or decoded; the
losses are hinge losses, and the adversarial term's weight is set each step from the two losses' gradients at the
decoder's last layer, as in taming-transformers' VQGAN (Esser et al. 2021, eq. 7), so that it neither swamps nor
vanishes beside the reconstruction loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) images in [0, 1] -> (B, 1, H/4 - 2, W/4 - 2) logits, one per overlapping patch.

    Two stride-2 4x4 convolutions then two stride-1 ones, GroupNorm (no batch statistics: the real and the
    decoded halves of a batch are scored alike) and LeakyReLU 0.2 between them."""

    def __init__(self, c: int = 32) -> None:
        super().__init__()
        if c < 1:
            raise ValueError(f"the discriminator's width must be at least 1, got {c}")
        layers: list[nn.Module] = [nn.Conv2d(3, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        widths = [c, 2 * c, 4 * c]
        for i, stride in enumerate((2, 1)):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 4, stride=stride, padding=1),
                       nn.GroupNorm(1, widths[i + 1]), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic: real patches pushed above +1, decoded ones below -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """What the decoder minimises: minus the critic's mean score of its patches."""
    return -fake_logits.mean()


def balanced_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                    cap: float = 1e4) -> torch.Tensor:
    """The adversarial weight that makes its gradient at `last_layer` (the decoder's last weight tensor) as large
    as the reconstruction loss's: |grad rec| / (|grad adv| + 1e-4), clamped to [0, cap] and detached."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, cap).detach()
