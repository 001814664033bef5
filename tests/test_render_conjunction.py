"""Prompt conjunctions (AND) and composable diffusion's combination of model outputs: pure logic."""

import pytest
import torch

from t2i.render.conjunction import (
    MAX_CONJUNCTS,
    Conjunct,
    ConjunctionError,
    combine,
    is_conjunction,
    join_conjunction,
    parse_conjunction,
)


def test_a_prompt_without_and_is_left_alone():
    # a trailing ":9" is only a weight inside a conjunction (A1111 would read this one as weight 9)
    for prompt in ("a red circle", "ratio 16:9", "a circle and a square", "(red:1.2) circle"):
        assert parse_conjunction(prompt) == [Conjunct(prompt, 1.0)]
        assert not is_conjunction(parse_conjunction(prompt))


def test_conjuncts_and_weights():
    got = parse_conjunction("a red circle :1.5 AND a blue square AND  a star : -0.5 AND a cat:.25")
    assert got == [Conjunct("a red circle", 1.5), Conjunct("a blue square", 1.0), Conjunct("a star", -0.5),
                   Conjunct("a cat", 0.25)]
    assert is_conjunction(got)


def test_only_upper_case_whole_word_and_splits():
    assert len(parse_conjunction("a circle and a square ANDROID AND a star")) == 2
    assert parse_conjunction("a circle AND\na square")[1] == Conjunct("a square", 1.0)


@pytest.mark.parametrize("prompt, message", [
    ("a circle AND", "conjunct 2 of 2 is empty"),
    ("AND a circle", "conjunct 1 of 2 is empty"),
    ("a circle AND :0.5 AND a square", "conjunct 2 of 3 is empty"),
    ("a circle :0 AND a square :0", "weight 0"),
    ("a circle :1000 AND a square", "weights lie in"),
    (" AND ".join(["a circle"] * (MAX_CONJUNCTS + 1)), f"at most {MAX_CONJUNCTS}"),
])
def test_bad_conjunctions_say_why(prompt, message):
    with pytest.raises(ConjunctionError, match=message):
        parse_conjunction(prompt)


def test_combine_is_the_papers_sum_of_guidance_terms():
    g = torch.Generator().manual_seed(0)
    u, c1, c2 = (torch.randn(2, 4, 3, 3, generator=g) for _ in range(3))
    guided, cond = combine(u, [c1, c2], [1.0, -0.5], 3.0)
    assert torch.allclose(guided, u + 3.0 * ((c1 - u) - 0.5 * (c2 - u)))
    assert torch.allclose(cond, u + (c1 - u) - 0.5 * (c2 - u))
    # one conjunct of weight 1 is ordinary classifier-free guidance
    guided, cond = combine(u, [c1], [1.0], 7.5)
    assert torch.equal(guided, u + 7.5 * (c1 - u)) and torch.allclose(cond, c1)
    with pytest.raises(ValueError):
        combine(u, [c1], [1.0, 2.0], 1.0)


def test_join_gives_the_conjuncts_back():
    cs = [Conjunct("ratio 16:9", 1.0), Conjunct("a star", -0.5), Conjunct("a red circle", 2.25)]
    assert parse_conjunction(join_conjunction(cs)) == cs
    with pytest.raises(ConjunctionError, match="holds the word AND"):
        join_conjunction([Conjunct("a AND b"), Conjunct("c")])
