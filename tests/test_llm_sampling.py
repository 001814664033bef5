import torch

from t2i.llm import SamplingSettings
from t2i.llm.sampling import filtered_logits, sample_token

LOGITS = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))


def kept(settings, previous=()):
    x = filtered_logits(LOGITS, torch.tensor(previous, dtype=torch.long), settings)
    return [i for i in range(4) if torch.isfinite(x[i])]


def test_filters():
    assert kept(SamplingSettings(temperature=1.0)) == [0, 1, 2, 3]
    assert kept(SamplingSettings(temperature=1.0, top_k=2)) == [0, 1]
    assert kept(SamplingSettings(temperature=1.0, top_p=0.8)) == [0, 1]  # 0.5 + 0.3 reaches 0.8
    assert kept(SamplingSettings(temperature=1.0, top_p=0.81)) == [0, 1, 2]
    assert kept(SamplingSettings(temperature=1.0, top_p=0.0)) == [0]  # the best token always survives
    assert kept(SamplingSettings(temperature=1.0, min_p=0.5)) == [0, 1]  # p >= 0.25


def test_repetition_penalty_pushes_seen_tokens_down():
    x = filtered_logits(LOGITS, torch.tensor([0]), SamplingSettings(temperature=0, repetition_penalty=2.0))
    assert x[0] == LOGITS[0] * 2.0 and x[1] == LOGITS[1]  # log-probs are negative: multiplied
    pos = torch.tensor([2.0, 1.0])
    assert filtered_logits(pos, torch.tensor([0]), SamplingSettings(temperature=0, repetition_penalty=4.0))[0] == 0.5


def test_greedy_and_seeded_sampling():
    s = SamplingSettings(temperature=0)
    assert sample_token(LOGITS, torch.tensor([]), s, torch.Generator()) == 0
    s = SamplingSettings(temperature=1.0)
    draws = [sample_token(LOGITS, torch.tensor([]), s, torch.Generator().manual_seed(k)) for k in range(200)]
    again = [sample_token(LOGITS, torch.tensor([]), s, torch.Generator().manual_seed(k)) for k in range(200)]
    assert draws == again and len(set(draws)) == 4
    assert 0.35 < draws.count(0) / 200 < 0.65
