"""A prompt's class comes from its text alone, and sorts the suite's tasks and the development set right."""

from __future__ import annotations

from pathlib import Path

import pytest

import t2i
from t2i.prompt_class import PROMPT_CLASSES, prompt_class
from t2i.world.suite import builtin_suite, read_suite

TASK_CLASS = {"single_object": "single", "colors": "single", "two_object": "several", "position": "relation",
              "color_attr": "several", "counting": "count"}
DEV_SET = Path(t2i.__file__).parent / "world" / "data" / "dev_prompts.jsonl"


def test_every_suite_line_gets_its_tasks_class():
    wrong = [(line.tag, line.prompt) for line in builtin_suite() if prompt_class(line.prompt) != TASK_CLASS[line.tag]]
    assert wrong == []


def test_every_development_prompt_gets_its_tasks_class():
    lines = read_suite(DEV_SET)
    assert len(lines) >= 60
    assert [(line.tag, line.prompt) for line in lines if prompt_class(line.prompt) != TASK_CLASS[line.tag]] == []


@pytest.mark.parametrize(("prompt", "kind"), [
    ("a red circle above a blue square", "relation"),
    ("put a red circle over a blue square", "relation"),
    ("blue square; red circle on top", "relation"),
    ("star left, square right", "relation"),
    ("a cat next to a dog", "relation"),
    ("i want a triangle on the right side of a circle", "relation"),
    ("a red circle and a blue square", "several"),
    ("a cat with a dog", "several"),
    ("a red circle", "single"),
    ("red circle", "single"),
    ("a purple star, nothing else", "single"),
    ("just an orange circle on a plain background", "single"),
    ("something red and round", "single"),
    ("a cat sitting on a sofa", "single"),
    ("two yellow stars", "count"),
    ("3 blue stars", "count"),
    ("a couple of yellow stars", "count"),
    ("a red circle and two blue squares", "count"),  # a count wins: composing costs counting
])
def test_prompt_classes(prompt, kind):
    assert kind in PROMPT_CLASSES and prompt_class(prompt) == kind
