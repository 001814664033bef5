"""Next-token sampling for backends that hand us logits (torch).

Order: repetition penalty (CTRL, Keskar et al. 2019: positive logits of seen tokens divided by the
penalty, negative ones multiplied) -> temperature -> top-k -> top-p (nucleus, Holtzman et al. 2019)
-> min-p (keep p >= min_p * p_max).  Sampling draws from a CPU generator in float32, so one seed gives
one answer whatever the device.
"""

from __future__ import annotations

import torch

from t2i.llm.base import SamplingSettings


def filtered_logits(logits: torch.Tensor, previous: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    """(V,) logits -> (V,) float32 logits with filtered-out tokens at -inf; `previous` = (n,) token ids."""
    x = logits.detach().to("cpu", torch.float32).clone()  # (V,)
    if s.repetition_penalty != 1.0 and previous.numel():
        seen = torch.unique(previous.to("cpu"))
        v = x[seen]
        x[seen] = torch.where(v > 0, v / s.repetition_penalty, v * s.repetition_penalty)
    if s.temperature == 0:
        return x
    x = x / s.temperature
    if 0 < s.top_k < x.numel():
        kth = torch.topk(x, s.top_k).values[-1]
        x[x < kth] = -torch.inf
    if s.top_p < 1.0:
        order = torch.argsort(x, descending=True)
        probs = torch.softmax(x[order], dim=0)
        before = torch.cumsum(probs, dim=0) - probs  # mass of the tokens ranked above each one
        drop = before >= s.top_p
        drop[0] = False  # the most likely token always survives
        x[order[drop]] = -torch.inf
    if s.min_p > 0:
        probs = torch.softmax(x, dim=0)
        x[probs < s.min_p * probs.max()] = -torch.inf
    return x


def sample_token(logits: torch.Tensor, previous: torch.Tensor, s: SamplingSettings,
                 generator: torch.Generator) -> int:
    """One token id from (V,) logits; greedy when temperature is 0."""
    x = filtered_logits(logits, previous, s)
    if s.temperature == 0:
        return int(torch.argmax(x))
    return int(torch.multinomial(torch.softmax(x, dim=0), 1, generator=generator))
