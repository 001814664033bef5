"""Our own prompt sets (development and held-out): each line's expected scene meets the line under the scorer, and
the sets hold what their pages say."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import t2i
from t2i.world.suite import read_suite, render_suite, score_folder

DATA = Path(t2i.__file__).parent / "world" / "data"
SETS = {"dev_prompts.jsonl": {"position": 24, "colors": 16, "counting": 12, "single_object": 12},
        "heldout_prompts.jsonl": {"position": 24, "colors": 16, "counting": 8, "single_object": 8}}


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_expected_scene_meets_its_line(name, tmp_path):
    lines = read_suite(DATA / name)
    assert Counter(line.tag for line in lines) == SETS[name]
    assert all(line.scene is not None for line in lines)
    render_suite(lines, tmp_path)
    score = score_folder(tmp_path, lines)
    assert score.problems == [] and score.overall == 1.0, [v for v in score.verdicts if not v.correct]


def test_the_sets_share_no_prompt_with_each_other_or_the_suite():
    from t2i.world.suite import builtin_suite

    prompts = [{line.prompt.lower() for line in read_suite(DATA / name)} for name in sorted(SETS)]
    assert prompts[0].isdisjoint(prompts[1])
    suite = {line.prompt.lower() for line in builtin_suite()}
    assert suite.isdisjoint(prompts[0] | prompts[1])
