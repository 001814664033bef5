import pytest

from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions, RequestError


def test_round_trip():
    r = GenerationRequest("a red circle", seed=3, steps=10, guidance=2.5, width=64, height=64,
                          model_options={"vae_tiling": True}, presample=PresampleOptions(enabled=True, seed=1),
                          compose=ComposeOptions(program="canvas = Canvas()"))
    assert GenerationRequest.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("change, message", [
    ({"seed": -1}, "seed"),
    ({"steps": 0}, "steps"),
    ({"guidance": float("nan")}, "guidance"),
    ({"prompt": "x" * 10_001}, "prompt"),
    ({"n_images": True}, "n_images"),
    ({"model_options": {"a": [1, 2]}}, "model_options"),
])
def test_validation(change, message):
    d = GenerationRequest("p").to_dict()
    d.update(change)
    with pytest.raises(RequestError, match=message):
        GenerationRequest.from_dict(d)


def test_untrusted_dict():
    with pytest.raises(RequestError, match="unknown keys"):
        GenerationRequest.from_dict({**GenerationRequest("p").to_dict(), "path": "/etc/passwd"})
    with pytest.raises(RequestError, match="schema"):
        GenerationRequest.from_dict({"prompt": "p"})
    with pytest.raises(RequestError, match="presample has unknown keys"):
        GenerationRequest.from_dict({**GenerationRequest("p").to_dict(), "presample": {"x": 1}})
