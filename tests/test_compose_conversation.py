from __future__ import annotations

import pytest

from t2i.compose import CanvasError, parse_canvas
from t2i.compose.conversation import GENERIC_SYSTEM, OMOST_SYSTEM, Composer, system_prompt_for
from t2i.llm import Completion

GOOD = '''Here is the canvas.
```python
canvas = Canvas()
canvas.set_global_description(description='A {c} square.', detailed_descriptions=[], tags='{c} square',
                              HTML_web_color_name='gray')
canvas.add_local_description(location='in the center', offset='no offset', area='a small square area',
                             distance_to_viewer=1.0, description='A {c} square.', detailed_descriptions=[],
                             tags='{c} square', atmosphere='', style='', quality_meta='', HTML_web_color_name='{c}')
```'''


class ChatLLM:
    name = "chat"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def complete(self, prompt, settings, on_token=None):
        raise NotImplementedError

    def chat(self, messages, settings, on_token=None):
        self.calls.append((list(messages), settings))
        text = self.answers.pop(0)
        if on_token:
            on_token(text)
        return Completion(text, "stop")


def test_compose_parses_the_answer_and_records_the_conversation():
    llm = ChatLLM([GOOD.format(c="red")])
    out = Composer(llm, OMOST_SYSTEM).compose("a red square", seed=3)
    assert out.canvas.components[0].color == "red" and not out.retried
    assert [m.role for m in out.messages] == ["system", "user", "assistant"]
    assert llm.calls[0][1].seed == 3 and llm.calls[0][1].temperature == 0.6 and llm.calls[0][1].top_p == 0.9
    assert parse_canvas(out.program).process() == out.canvas.process()


def test_multi_round_editing_rewrites_the_whole_program():
    llm = ChatLLM([GOOD.format(c="red"), GOOD.format(c="green")])
    composer = Composer(llm, OMOST_SYSTEM)
    first = composer.compose("a red square")
    second = composer.compose("now make the square green", history=first.messages[1:])
    assert second.canvas.components[0].color == "green"
    sent = llm.calls[1][0]
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1].content == "now make the square green"


def test_one_retry_with_the_error_fed_back():
    llm = ChatLLM(["I cannot draw that.", GOOD.format(c="blue")])
    out = Composer(llm, GENERIC_SYSTEM).compose("a blue square")
    assert out.retried and "rejected" in out.warnings[0]
    assert "cannot be used" in llm.calls[1][0][-1].content and llm.calls[1][1].seed == 12346
    llm = ChatLLM(["nothing", "still nothing"])
    with pytest.raises(CanvasError, match="no Canvas program"):
        Composer(llm, GENERIC_SYSTEM).compose("a blue square")


def test_a_resampling_retry_asks_the_same_question_with_the_next_seed():
    llm = ChatLLM(["I cannot draw that.", GOOD.format(c="blue")])
    out = Composer(llm, GENERIC_SYSTEM, retry="resample").compose("a blue square")
    assert out.retried and "rejected" in out.warnings[0]
    (first, s1), (second, s2) = llm.calls
    assert second == first and (s1.seed, s2.seed) == (12345, 12346)  # no feedback turn
    assert [m.role for m in out.messages] == ["system", "user", "assistant"]
    with pytest.raises(ValueError, match="retry must be one of"):
        Composer(llm, GENERIC_SYSTEM, retry="twice")


def test_the_retry_way_belongs_to_the_model(tmp_path):
    from t2i.compose.conversation import retry_for

    assert retry_for(None) == retry_for(tmp_path) == "feedback"
    (tmp_path / "compose.json").write_text('{"system": "s", "retry": "resample"}')
    assert retry_for(tmp_path) == "resample"
    (tmp_path / "compose.json").write_text('{"system": "s", "retry": "pray"}')
    with pytest.raises(CanvasError, match="retry must be one of"):
        retry_for(tmp_path)


def test_streaming_and_word_corrections():
    seen = []
    llm = ChatLLM([GOOD.format(c="red").replace("'in the center'", "'in the centre'")])
    out = Composer(llm, OMOST_SYSTEM).compose("x", on_token=seen.append)
    assert seen and out.canvas.components[0].location == "in the center"
    assert out.warnings == ["line 6: location: corrected 'in the centre' to 'in the center'"]
    strict = Composer(ChatLLM([GOOD.format(c="red").replace("'in the center'", "'in the centre'")] * 2),
                      OMOST_SYSTEM, correct_words=False)
    out = strict.compose("x")  # an answer is read leniently: the refused call is skipped, and the warning says why
    assert out.canvas.components == [] and not out.retried
    assert out.warnings == ["read 1 canvas call; skipped 3 lines that could not be read as canvas calls (lines 6-8; "
                            "first: line 6: location 'in the centre' is not a valid location; closest: "
                            "'in the center', 'on the left', 'on the top')"]


def test_system_prompts():
    assert system_prompt_for("omost-llama-3-8b-4bits") == OMOST_SYSTEM
    assert system_prompt_for("some/generic-model") == GENERIC_SYSTEM
    assert 1000 < len(OMOST_SYSTEM) < 2000 and "a medium-sized vertical area" in OMOST_SYSTEM
    assert "canvas = Canvas()" in GENERIC_SYSTEM
    example = GENERIC_SYSTEM.split("```python\n")[-1].split("```")[0]
    assert len(parse_canvas(example).components) == 2
    with pytest.raises(CanvasError):
        Composer(ChatLLM([]), OMOST_SYSTEM).compose("  ")

