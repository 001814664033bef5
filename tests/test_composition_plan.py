"""Whether a request is composed, and how: the model's per-class defaults, decided once and recorded."""

from __future__ import annotations

import pytest

from t2i.composition_plan import ComposeDefaults, may_compose, plan_composition
from t2i.registry import ModelRegistry
from t2i.types import ComposeOptions, GenerationRequest

DEFAULTS = {"steps": 2, "compose": {
    "default": "auto", "composer": "omost-tiny",
    "classes": {"single": {"auto": True},
                "relation": {"auto": True, "composed": {"options": {"region_text": "local", "hires_scale": 2}}},
                "count": {"auto": False, "composed": {"options": {"region_text": "local"}}}}}}


def plan(prompt: str, defaults=DEFAULTS, **compose):
    request = GenerationRequest(prompt, model="m", compose=ComposeOptions(**compose))
    return plan_composition(request, defaults, "m")


def test_auto_composes_the_classes_measured_to_gain_with_their_settings():
    several, warning = plan("a red circle above a blue square")
    assert warning is None and several.compose.enabled is True and several.compose.model == "omost-tiny"
    assert several.model_options == {"region_text": "local", "hires_scale": 2}
    assert several.compose.decision == "auto: a relation prompt is composed with region_text=local, hires_scale=2"
    single, _ = plan("a green star")
    assert single.compose.enabled is True and single.model_options == {}
    count, _ = plan("two yellow stars")
    assert count.compose.enabled is False and count.model_options == {}
    assert count.compose.decision.startswith("auto: a count prompt is drawn plain")


def test_a_request_that_says_nothing_gets_the_models_default_mode():
    request, _ = plan("a green star", enabled=None)
    assert request.compose.enabled is True
    off, _ = plan("a green star", defaults={"compose": {**DEFAULTS["compose"], "default": "off"}}, enabled=None)
    assert off.compose.enabled is False


def test_forced_composition_uses_the_classes_composed_settings_and_off_draws_plain():
    count, _ = plan("two yellow stars", enabled=True)
    assert count.compose.enabled is True and count.model_options == {"region_text": "local"}
    assert count.compose.decision.startswith("forced: a count prompt is composed")
    off, _ = plan("a red circle above a blue square", enabled=False)
    assert off.compose.enabled is False and off.model_options == {} and off.compose.decision is None


def test_what_the_request_sets_wins_over_the_class_settings():
    request = GenerationRequest("a red circle above a blue square", model="m", model_options={"hires_scale": 1.5})
    planned, _ = plan_composition(request, DEFAULTS, "m")
    assert planned.model_options == {"region_text": "local", "hires_scale": 1.5}


def test_a_decided_request_is_planned_again_to_itself():
    for prompt in ("a red circle above a blue square", "two yellow stars", "a green star"):
        once, _ = plan(prompt, enabled="auto")
        assert plan_composition(once, DEFAULTS, "m") == (once, None)


def test_auto_on_a_model_without_a_composer_draws_plain_and_says_so():
    request, warning = plan("a red circle above a blue square", defaults={"steps": 2}, enabled="auto")
    assert request.compose.enabled is False and "declares no composer" in warning
    quiet, warning = plan("a red circle above a blue square", defaults={"steps": 2}, enabled=None)
    assert quiet.compose.enabled is False and warning is None  # its default is plain: nothing to say


def test_a_class_the_defaults_do_not_name_is_drawn_plain():
    defaults = {"compose": {"default": "auto", "composer": "omost-tiny", "classes": {"single": {"auto": True}}}}
    request, _ = plan("a red circle above a blue square", defaults=defaults)
    assert request.compose.enabled is False and request.model_options == {}
    forced, _ = plan("a red circle above a blue square", defaults=defaults, enabled=True)
    assert forced.compose.enabled is True and forced.model_options == {}


def test_an_and_prompt_is_drawn_plain_under_auto():
    request, _ = plan("a red circle AND a blue square")
    assert request.compose.enabled is False and "AND" in request.compose.decision


def test_a_given_program_is_always_drawn():
    request, _ = plan("two yellow stars", enabled=False, program="canvas = Canvas()")
    assert request.compose.enabled is False  # off is off
    drawn, _ = plan("two yellow stars", enabled="auto", program="canvas = Canvas()")
    assert drawn.compose.enabled is True


def test_may_compose_says_when_a_composer_is_worth_opening():
    blank = GenerationRequest("x", model="m")
    assert may_compose(blank, DEFAULTS) and not may_compose(blank, {"steps": 2})
    assert not may_compose(blank.with_(compose=ComposeOptions(enabled=False)), DEFAULTS)
    assert may_compose(blank.with_(compose=ComposeOptions(enabled=True)), {"steps": 2})


@pytest.mark.parametrize("block", [{"default": "always"}, {"classes": {"many": {"auto": True}}},
                                   {"classes": {"single": {"auto": True, "composed": {"width": 9}}}}, "auto"])
def test_a_malformed_block_is_refused_with_where_it_is(block):
    with pytest.raises(ValueError, match="^m: compose"):
        ComposeDefaults.from_defaults({"compose": block}, "m")


def test_every_registered_models_block_is_well_formed():
    registry = ModelRegistry()
    for spec in registry.specs():
        if registry.is_available(spec) and spec.kind != "llm":
            ComposeDefaults.from_defaults(registry.resolve(spec.name).spec.defaults, spec.name)
