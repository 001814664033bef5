import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2i.world.suite import (
    TASKS,
    SuiteError,
    build_suite,
    builtin_suite,
    read_suite,
    render_suite,
    score_folder,
    write_suite,
)

GENEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "geneval_prompts.jsonl"


@pytest.fixture(scope="module")
def small_suite():
    return build_suite(per_task=8, seed=3)


def _fill(root: Path, n: int, make) -> None:
    for i in range(n):
        d = root / f"{i:05d}" / "samples"
        d.mkdir(parents=True)
        Image.fromarray(make(i)).save(d / "0000.png")


def test_builtin_suite_is_reproducible_and_large_enough():
    lines = builtin_suite()
    assert [x.to_dict() for x in lines] == [x.to_dict() for x in build_suite(64, seed=0)]
    for task in TASKS:
        assert sum(x.tag == task for x in lines) >= 50


def test_round_trip(tmp_path, small_suite):
    write_suite(small_suite, tmp_path / "s.jsonl")
    assert [x.to_dict() for x in read_suite(tmp_path / "s.jsonl")] == [x.to_dict() for x in small_suite]


def test_ground_truth_scores_one(tmp_path, small_suite):
    render_suite(small_suite, tmp_path, 64, images_per_line=2)
    result = score_folder(tmp_path, small_suite)
    assert result.per_task == {t: 1.0 for t in TASKS} and result.overall == 1.0
    assert len(result.verdicts) == 2 * len(small_suite) and not result.problems


def test_blank_and_noise_score_near_zero(tmp_path, small_suite):
    n = len(small_suite)
    _fill(tmp_path / "blank", n, lambda i: np.full((64, 64, 3), 255, np.uint8))
    _fill(tmp_path / "noise", n, lambda i: np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert score_folder(tmp_path / "blank", small_suite).overall == 0.0
    assert score_folder(tmp_path / "noise", small_suite).overall <= 0.05


def test_bad_images_count_wrong_and_say_so(tmp_path, small_suite):
    render_suite(small_suite, tmp_path, 64)
    (tmp_path / "00000" / "samples" / "0000.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("RGB", (32, 48), (255, 255, 255)).save(tmp_path / "00001" / "samples" / "0000.png")
    for f in (tmp_path / "00002" / "samples").iterdir():
        f.unlink()
    result = score_folder(tmp_path, small_suite, size=(64, 64))
    assert len(result.verdicts) == len(small_suite)  # nothing skipped
    reasons = {v.index: v.reason for v in result.verdicts if not v.correct}
    assert set(reasons) == {0, 1, 2}
    assert "unreadable" in reasons[0]
    assert any(p.startswith("00000") for p in result.problems)
    assert "32x48" in reasons[1] and "no images" in reasons[2]


def test_empty_or_missing_folder(tmp_path, small_suite):
    with pytest.raises(SuiteError, match="no images"):
        score_folder(tmp_path, small_suite)
    with pytest.raises(SuiteError, match="not a folder"):
        score_folder(tmp_path / "nope", small_suite)


@pytest.mark.parametrize("line, message", [
    ('{"tag": "colors", "include": [{"class": "dragon", "count": 1}], "prompt": "x"}', "unknown class 'dragon'"),
    ('{"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "teal"}], "prompt": "x"}',
     "unknown color"),
    ('{"tag": "dancing", "include": [{"class": "circle", "count": 1}], "prompt": "x"}', "unknown tag"),
    ('{"tag": "position", "include": [{"class": "circle", "count": 1, "position": ["near", 0]}], "prompt": "x"}',
     "position"),
    ('{"tag": "colors", "include": [{"class": "circle"', "not valid JSON"),
    ('{"tag": "colors", "include": [], "prompt": "x"}', "include"),
])
def test_bad_suite_lines_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a circle"}\n'
                 + line + "\n")
    with pytest.raises(SuiteError, match=message) as e:
        read_suite(p)
    assert "bad.jsonl:2" in str(e.value)


@pytest.mark.skipif(not GENEVAL.exists(), reason="shared GenEval prompts not present")
def test_geneval_files_read_the_same_way(tmp_path):
    # GenEval's own lines parse once their COCO classes are swapped for shapes (and colours kept).
    swap = {}
    shapes = ["circle", "square", "triangle", "star"]
    out = []
    for raw in GENEVAL.read_text().splitlines():
        d = json.loads(raw)
        for group in d["include"] + d.get("exclude", []):
            group["class"] = swap.setdefault(group["class"], shapes[len(swap) % 4])
        out.append(json.dumps(d))
    p = tmp_path / "geneval_shapes.jsonl"
    p.write_text("\n".join(out))
    lines = read_suite(p)
    assert len(lines) == 553 and {x.tag for x in lines} == set(TASKS)
    with pytest.raises(SuiteError, match="geneval_prompts.jsonl:1: include\\[0\\]: unknown class 'bench'"):
        read_suite(GENEVAL)
