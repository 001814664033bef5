"""AND weights: in a conjunction, a conjunct ending in ':TOKEN' must carry a finite weight within +-MAX_ABS_WEIGHT,
or the prompt is refused; prompts without AND and colons inside a conjunct stay text; A1111's "(word:1.2)" gets a
warning that it is literal text."""

from __future__ import annotations

import pytest

from t2i.render.conjunction import (
    MAX_ABS_WEIGHT,
    Conjunct,
    ConjunctionError,
    parse_conjunction,
    weight_syntax_warning,
)

REFUSED = ["nan", "NaN", "inf", "-inf", "+inf", "infinity", "1e308", "-1e308", "1e5", "100.5", "-101", "1e400", "abc",
           "1.2.3", "", "0x10", "1_0", "1e", ".", "-", "+", "e5", "1/2", "٣"]  # the last: a non-ASCII digit


@pytest.mark.parametrize("token", REFUSED)
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_trailing_token_that_is_not_a_weight_is_refused(token, where):
    bad = f"a red circle :{token}"
    prompt = f"{bad} AND a blue square :0.5" if where == "first" else f"a blue square :0.5 AND {bad}"
    k = 1 if where == "first" else 2
    with pytest.raises(ConjunctionError) as e:
        parse_conjunction(prompt)
    message = str(e.value)
    assert message.startswith(f"conjunct {k} of 2 ('a red circle :{token}') ends in ':{token}', which is not a "
                              f"weight: weights lie in [-{MAX_ABS_WEIGHT:g}, {MAX_ABS_WEIGHT:g}], written like ':0.8'")
    assert "put a word after it" in message and "\n" not in message


@pytest.mark.parametrize("token, weight", [("0.5", 0.5), ("-1", -1.0), ("+2", 2.0), (".5", 0.5), ("1.", 1.0),
                                           ("1e-1", 0.1), ("2E1", 20.0), ("-1e2", -100.0), ("100", 100.0), ("0", 0.0),
                                           (" 0.25 ", 0.25)])
def test_valid_weights_are_read(token, weight):
    assert parse_conjunction(f"a red circle :{token} AND a blue square") == [Conjunct("a red circle", weight),
                                                                             Conjunct("a blue square", 1.0)]
    assert parse_conjunction(f"a blue square AND a red circle:{token}")[1] == Conjunct("a red circle", weight)


@pytest.mark.parametrize("prompt", ["ratio 16:9", "a red circle :nan", "a star :inf", "a sign saying :abc",
                                    "(red:1.2) circle", "a poster :1e308", "time 10:30:00", "a cat:"])
def test_prompts_without_and_are_left_alone(prompt):
    assert parse_conjunction(prompt) == [Conjunct(prompt, 1.0)]


@pytest.mark.parametrize("prompt, first", [
    ("a 16:9 poster AND a star", Conjunct("a 16:9 poster", 1.0)),
    ("a 16:9 poster :0.5 AND a star", Conjunct("a 16:9 poster", 0.5)),
    ("style: watercolor painting AND a star", Conjunct("style: watercolor painting", 1.0)),
    ("a sign saying : hello world AND a star", Conjunct("a sign saying : hello world", 1.0)),
])
def test_a_colon_inside_a_conjunct_stays_text(prompt, first):
    assert parse_conjunction(prompt) == [first, Conjunct("a star", 1.0)]


@pytest.mark.parametrize("prompt", ["a (red:1.2) circle", "(red circle: 0.8)", "a ((blue:1.5)) square", "(x:-1e-1)",
                                    "a circle AND (red:1.2) square"])
def test_a1111_attention_syntax_gets_a_warning(prompt):
    warning = weight_syntax_warning(prompt)
    assert warning is not None and "\n" not in warning
    assert "is A1111 attention-weight syntax, which is not supported: it is passed to the model as literal text" \
        in warning
    assert warning.endswith("e.g. 'a red circle AND a blue square :1.2'")


@pytest.mark.parametrize("prompt", ["a red circle", "ratio 16:9", "(a red circle)", "a circle :1.2 AND a square",
                                    "[red] circle", "(red:abc)", "(time 10:30 pm)", ""])
def test_no_warning_without_attention_syntax(prompt):
    assert weight_syntax_warning(prompt) is None


def test_the_warning_quotes_the_syntax_found_and_shortens_it():
    assert weight_syntax_warning("a (red:1.2) circle").startswith("'(red:1.2)' is A1111")
    long = "(" + "very " * 40 + "red:1.2)"
    shown = "'(very very very very very ve...very very very very red:1.2)'"
    assert weight_syntax_warning(long).startswith(f"{shown} is A1111")
