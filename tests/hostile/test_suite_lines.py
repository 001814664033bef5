"""Suite lines: a misspelt key at any level is refused (it would silently drop a requirement); the shipped suite
and GenEval's own file still read; JSON that Python cannot hold is a SuiteError; `score_folder` refuses sizes
that cannot be scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from t2i.world.suite import SuiteError, build_suite, builtin_suite, parse_line, read_suite, render_suite, score_folder

GENEVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "geneval_prompts.jsonl"
LINE = build_suite(per_task=1, seed=0, tasks=("counting",))[0].to_dict()  # has include, exclude and scene
POSITION = build_suite(per_task=1, seed=0, tasks=("position",))[0].to_dict()


def _misspelt(d: dict, path: tuple, wrong: str) -> str:
    """`d` as a JSON line with the key at `path` (keys and list indices, the key last) renamed to `wrong`."""
    d = json.loads(json.dumps(d))
    parent = d
    for step in path[:-1]:
        parent = parent[step]
    parent[wrong] = parent.pop(path[-1])
    return json.dumps(d)


MISSPELT = {
    "top level exclude": (LINE, ("exclude",), "exlcude", "f:1: unknown keys ['exlcude'] (a suite line has exclude, "
                                                         "include, prompt, scene, tag)"),
    "top level prompt": (LINE, ("prompt",), "Prompt", "f:1: unknown keys ['Prompt']"),
    "top level scene": (LINE, ("scene",), "scnee", "f:1: unknown keys ['scnee']"),
    "include group count": (LINE, ("include", 0, "count"), "cuont", "f:1: include[0]: unknown keys ['cuont']"),
    "include group position": (POSITION, ("include", 1, "position"), "postion",
                               "f:1: include[1]: unknown keys ['postion']"),
    "exclude group class": (LINE, ("exclude", 0, "class"), "clas", "f:1: exclude[0]: unknown keys ['clas']"),
    "scene level": (LINE, ("scene", "background"), "backgrund", "f:1: scene: unknown keys ['backgrund'] (a scene "
                                                               "has background, objects, schema)"),
    "scene object": (LINE, ("scene", "objects", 0, "color"), "colour", "f:1: bad scene: bad scene object"),
}


@pytest.mark.parametrize("name", list(MISSPELT))
def test_a_misspelt_key_at_any_level_is_refused(name):
    d, path, wrong, message = MISSPELT[name]
    assert parse_line(json.dumps(d), "f:1").to_dict() == d  # the line as written parses
    with pytest.raises(SuiteError) as e:
        parse_line(_misspelt(d, path, wrong), "f:1")
    assert str(e.value).startswith(message)


def test_an_extra_key_is_refused_too():
    with pytest.raises(SuiteError, match=r"^f:1: unknown keys \['note'\]"):
        parse_line(json.dumps({**LINE, "note": "x"}), "f:1")
    with pytest.raises(SuiteError, match=r"^f:1: scene: unknown keys \['note'\]"):
        parse_line(json.dumps({**LINE, "scene": {**LINE["scene"], "note": "x"}}), "f:1")


@pytest.mark.parametrize("text, message", [
    ("[" * 99_000, "f:1: not readable JSON (RecursionError"),
    ('{"tag": ' + "1" * 5000 + "}", "f:1: not readable JSON (ValueError: Exceeds the limit (4300 digits)"),
    ("{", "f:1: not valid JSON"),
    ("[]", "f:1: a suite line must be a JSON object"),
])
def test_json_python_cannot_hold_is_a_suite_error(text, message):
    with pytest.raises(SuiteError) as e:
        parse_line(text, "f:1")
    assert str(e.value).startswith(message)


def test_the_shipped_suite_still_reads():
    lines = builtin_suite()
    assert len(lines) == 384 and all(x.scene is not None for x in lines)


@pytest.mark.skipif(not GENEVAL.exists(), reason="shared GenEval prompts not present")
def test_genevals_lines_fail_only_on_their_coco_classes(tmp_path):
    shapes = ["circle", "square", "triangle", "star"]
    swapped = []
    for n, raw in enumerate(GENEVAL.read_text(encoding="utf-8").splitlines(), start=1):
        with pytest.raises(SuiteError, match=rf"^g:{n}: include\[0\]: unknown class "):
            parse_line(raw, f"g:{n}")
        d = json.loads(raw)
        for k, group in enumerate(d["include"] + d.get("exclude", [])):
            group["class"] = shapes[k % 4]
        swapped.append(json.dumps(d))
    (tmp_path / "g.jsonl").write_text("\n".join(swapped), encoding="utf-8")
    assert len(read_suite(tmp_path / "g.jsonl")) == 553


@pytest.mark.parametrize("size", [(0, 0), (-1, 64), (64, 0), (10000, 64), (64, 8193), (8, 8), (True, 64), (64.0, 64),
                                  (64,), (64, 64, 3), "64x64"])
def test_score_folder_refuses_sizes_that_cannot_be_scored(tmp_path, size):
    lines = build_suite(per_task=1, seed=0, tasks=("colors",))
    render_suite(lines, tmp_path, 64)
    with pytest.raises(SuiteError) as e:
        score_folder(tmp_path, lines, size=size)
    assert str(e.value).startswith("--size must be WIDTHxHEIGHT with each side in [16, 8192]")
    assert score_folder(tmp_path, lines, size=(64, 64)).overall == 1.0
    assert score_folder(tmp_path, lines, size=(32, 64)).overall == 0.0  # a size that is not the images' is wrong
