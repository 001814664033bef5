"""Cancelling presampling and composing through `t2i.stages` with the shipped tiny LLMs: a token set from
another thread mid-generation raises Cancelled at the next generated token; one set before raises before the
first model call; a presampler never turns a cancel into its fallback."""

from __future__ import annotations

import threading

import pytest

from t2i.backends import default_registry
from t2i.cancel import Cancelled, CancelToken
from t2i.stages import compose, open_composer, open_presampler, presample
from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions


class CancelledByAnotherThread(CancelToken):
    """A token that another thread cancels when the stage has checked it `after` times, and that counts
    the checks made after that (a stage must raise at the first)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.checks = after, 0
        self.places: list[str] = []

    def check(self, where: str = "") -> None:
        self.checks += 1
        self.places.append(where)
        if self.checks == self.after:
            other = threading.Thread(target=self.cancel, args=("stopped by the test",))
            other.start()
            other.join()
        super().check(where)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def presampler(registry):
    return open_presampler(None, registry)


@pytest.fixture(scope="module")
def composer(registry):
    return open_composer(None, registry)


def presample_request(prompt: str = "red circle") -> GenerationRequest:
    return GenerationRequest(prompt, seed=3, presample=PresampleOptions(enabled=True, target="long"))


def test_presample_stops_at_the_next_token_and_does_not_fall_back(presampler):
    whole = presample(presample_request(), presampler)
    assert not whole.fallback and whole.new_tags  # without a cancel the model writes on
    token = CancelledByAnotherThread(after=6)
    with pytest.raises(Cancelled, match=r"cancelled at token \d+ of at most \d+: stopped by the test"):
        presample(presample_request(), presampler, cancel=token)
    assert token.checks == 6  # raised at the check that first saw the cancel
    assert token.places[0] == "presample call 1 (tag)" and token.places[-1].startswith("token ")


def test_presample_with_a_token_set_before_calls_no_model(presampler):
    token = CancelledByAnotherThread(after=1)
    with pytest.raises(Cancelled, match="cancelled at presample call 1"):
        presample(presample_request(), presampler, cancel=token)
    assert token.checks == 1
    with pytest.raises(Cancelled, match="cancelled at presample call 1"):  # each conjunct of an AND prompt too
        presample(presample_request("red circle AND blue square"), presampler, cancel=token)


def test_compose_stops_at_the_next_token(composer):
    request = GenerationRequest("a red circle above a blue square", seed=1, compose=ComposeOptions(enabled=True))
    token = CancelledByAnotherThread(after=20)
    with pytest.raises(Cancelled, match=r"cancelled at token 18 of at most \d+: stopped by the test"):
        compose(request, composer, cancel=token)
    # the composer's own look, the backend's before the prompt, then one per token
    assert token.places[:2] == ["the first answer", "the prompt"] and token.places[2].startswith("token 1 of ")
    assert token.checks == 20


def test_compose_with_a_token_set_before_calls_no_model(composer):
    request = GenerationRequest("a red circle", seed=1, compose=ComposeOptions(enabled=True))
    token = CancelledByAnotherThread(after=1)
    with pytest.raises(Cancelled, match="cancelled at the first answer"):
        compose(request, composer, cancel=token)
    assert token.checks == 1
