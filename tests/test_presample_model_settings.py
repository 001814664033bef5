"""Sampling settings belong to the presampling model (presample.json "sampling"); a request may override them."""

from __future__ import annotations

import json

import pytest

from t2i.backends import default_registry
from t2i.presample import REFERENCE_SETTINGS, Presampler, sampling_for, targets_for
from t2i.presample.targets import sampling_from_dict
from t2i.stages import open_presampler, presample
from t2i.types import GenerationRequest, PresampleOptions, RequestError

from .test_presample_runner import SMALL, ScriptedLLM


class RecordingLLM(ScriptedLLM):
    def __init__(self) -> None:
        super().__init__()
        self.settings = []

    def complete(self, prompt, settings, on_token=None):
        self.settings.append(settings)
        return super().complete(prompt, settings, on_token)


def test_a_model_without_presample_json_samples_with_the_references_settings(tmp_path):
    assert sampling_for(None) == sampling_for(tmp_path) == REFERENCE_SETTINGS
    (tmp_path / "presample.json").write_text(json.dumps({**SMALL.to_dict()}))
    assert sampling_for(tmp_path) == REFERENCE_SETTINGS and targets_for(tmp_path) == SMALL


def test_presample_json_sampling_replaces_only_what_it_names(tmp_path):
    (tmp_path / "presample.json").write_text(json.dumps({**SMALL.to_dict(), "sampling": {"temperature": 1,
                                                                                          "top_k": 0}}))
    s = sampling_for(tmp_path)
    assert (s.temperature, s.top_k) == (1.0, 0) and isinstance(s.temperature, float)
    assert (s.top_p, s.min_p, s.max_tokens) == (REFERENCE_SETTINGS.top_p, REFERENCE_SETTINGS.min_p,
                                                REFERENCE_SETTINGS.max_tokens)
    assert targets_for(tmp_path) == SMALL  # the sampling key does not upset the targets


@pytest.mark.parametrize("bad, words", [({"temprature": 1.0}, "unknown key(s) temprature"),
                                        ({"top_k": 0.5}, "top_k must be an integer"),
                                        ({"temperature": "hot"}, "temperature must be a number"),
                                        ({"min_p": True}, "min_p must be a number")])
def test_bad_sampling_settings_are_named(bad, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sampling_from_dict(bad)


def test_the_request_overrides_the_models_settings_field_by_field():
    llm = RecordingLLM()
    own = sampling_from_dict({"temperature": 1.0, "top_k": 0, "min_p": 0.0})
    presampler = Presampler(llm, SMALL, settings=own)
    presample(GenerationRequest("red circle", seed=3, presample=PresampleOptions(enabled=True)), presampler)
    assert (llm.settings[0].temperature, llm.settings[0].top_k, llm.settings[0].min_p) == (1.0, 0, 0.0)
    llm.settings.clear()
    presample(GenerationRequest("red circle", seed=3, presample=PresampleOptions(enabled=True, temperature=0.2)),
              presampler)
    assert (llm.settings[0].temperature, llm.settings[0].top_k) == (0.2, 0)
    assert presampler.settings == own  # the model's own settings are left as they were


def test_the_shipped_tipo_tiny_samples_at_temperature_one():
    presampler = open_presampler("tipo-tiny", default_registry())
    s = presampler.settings
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.repetition_penalty) == (1.0, 1.0, 0, 0.0, 1.0)


def test_out_of_range_request_settings_are_refused():
    with pytest.raises(RequestError, match="presample.temperature"):
        PresampleOptions(enabled=True, temperature=-1.0).validate()
    assert PresampleOptions(enabled=True).validate().temperature is None
