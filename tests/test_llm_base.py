import pytest

from t2i.llm import Completion, Message, SamplingSettings, TextAccumulator, as_messages, stream


def feed(settings, pieces, on_token=None):
    acc = TextAccumulator(settings, on_token)
    for p in pieces:
        if not acc.add(p):
            break
    return acc.finish("stop")


def test_stop_string_split_across_pieces_is_cut_and_never_streamed():
    shown = []
    out = feed(SamplingSettings(stop=("\n\n",)), ["red circle\n", "\nblue square"], shown.append)
    assert out.text == "red circle" and out.finish_reason == "stop"
    assert "".join(shown) == "red circle"


def test_held_back_prefix_is_released_when_it_is_not_a_stop_string():
    shown = []
    out = feed(SamplingSettings(stop=("END",)), ["a E", "N", "d more"], shown.append)
    assert out.text == "a ENd more" and "".join(shown) == "a ENd more"


def test_size_cap_ends_generation():
    out = feed(SamplingSettings(max_chars=5), ["abc", "defg", "h"])
    assert (out.text, out.finish_reason) == ("abcde", "cap")


def test_on_token_false_cancels_and_keeps_the_text_so_far():
    out = feed(SamplingSettings(), ["a", "b", "c"], lambda piece: piece != "b")
    assert (out.text, out.finish_reason) == ("ab", "cancelled")


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=1.5), dict(top_k=-1), dict(max_tokens=0),
                                 dict(stop="x"), dict(stop=("",)), dict(temperature=float("nan")),
                                 dict(seed=True)])
def test_settings_reject_bad_values(bad):
    with pytest.raises(ValueError):
        SamplingSettings(**bad)


def test_completion_checks_its_finish_reason():
    with pytest.raises(ValueError):
        Completion("x", "eos")


def test_messages_from_mappings_and_bad_roles():
    assert as_messages([{"role": "user", "content": "hi"}]) == [Message("user", "hi")]
    with pytest.raises(ValueError):
        as_messages([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError):
        as_messages([])


def test_stream_yields_pieces_and_closing_cancels():
    seen = []

    def run(on_token):
        for i in range(1000):
            if on_token(f"{i} ") is False:
                seen.append("cancelled")
                return Completion("", "cancelled")
        return Completion("", "length")

    it = stream(run)
    first = [next(it) for _ in range(3)]
    it.close()
    assert first == ["0 ", "1 ", "2 "] and seen == ["cancelled"]


def test_stream_reraises_the_backend_error():
    def run(on_token):
        on_token("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(stream(run))
