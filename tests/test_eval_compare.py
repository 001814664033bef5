"""Line-by-line comparison of two eval runs (t2i.evaluation.compare), on hand-made result folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from t2i.evaluation.compare import CompareError, compare_runs, format_comparison

PROMPTS = [("single_object", "a photo of a star"), ("single_object", "a photo of a circle"),
           ("two_object", "a photo of a star and a square"), ("two_object", "a photo of a circle and a star")]


def _run(folder: Path, correct: list[list[bool]], seed: int = 0, prompts=PROMPTS) -> Path:
    folder.mkdir(parents=True)
    k = len(correct[0])
    (folder / "summary.json").write_text(json.dumps({"model": "m", "images_per_prompt": k, "seed": seed}))
    rows = [{"index": i, "tag": tag, "prompt": prompt, "filename": f"{i:05d}/samples/{j:04d}.png",
             "correct": c, "reason": ""}
            for i, ((tag, prompt), cs) in enumerate(zip(prompts, correct, strict=True)) for j, c in enumerate(cs)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_the_same_run_twice_differs_by_nothing(tmp_path) -> None:
    a = _run(tmp_path / "a", [[True], [False], [True], [False]])
    b = _run(tmp_path / "b", [[True], [False], [True], [False]])
    c = compare_runs([a], [b])
    assert c.diff == 0 and c.se == 0 and c.z == 0 and c.a_overall == c.b_overall == 0.5
    assert all(t.b_wins == t.a_wins == 0 for t in c.tasks)


def test_paired_differences_and_their_standard_error(tmp_path) -> None:
    # single: B gains line 1; two: B gains line 2 and loses line 3 (two images a line: shares of 0.5 count)
    a = _run(tmp_path / "a", [[True, True], [False, False], [False, False], [True, True]])
    b = _run(tmp_path / "b", [[True, True], [True, False], [True, True], [True, False]])
    c = compare_runs([a], [b])
    single, two = c.tasks
    assert (single.task, single.n, single.a, single.b, single.diff) == ("single_object", 2, 0.5, 0.75, 0.25)
    assert single.se == pytest.approx(0.25)  # d = (0, 0.5): std 0.354 / sqrt 2
    assert (two.diff, two.b_wins, two.a_wins) == (0.25, 1, 1)
    assert two.se == pytest.approx(math.sqrt(((1 - 0.25) ** 2 + (-0.5 - 0.25) ** 2) / 1) / math.sqrt(2))
    assert c.diff == pytest.approx(0.25) and c.se == pytest.approx(math.hypot(single.se, two.se) / 2)
    text = format_comparison(c)
    assert "overall" in text and "+0.250" in text and f"z = {c.z:+.2f}" in text


def test_several_run_pairs_pool_their_lines(tmp_path) -> None:
    a = [_run(tmp_path / f"a{s}", [[True], [False], [True], [False]], seed=s) for s in (0, 1)]
    b = [_run(tmp_path / f"b{s}", [[True], [True], [True], [False]], seed=s) for s in (0, 1)]
    c = compare_runs(a, b)
    assert [t.n for t in c.tasks] == [4, 4] and c.tasks[0].b_wins == 2 and c.diff == pytest.approx(0.25)


def test_runs_that_are_not_the_same_draws_are_refused(tmp_path) -> None:
    a = _run(tmp_path / "a", [[True], [False], [True], [False]])
    with pytest.raises(CompareError, match="seed"):
        compare_runs([a], [_run(tmp_path / "b", [[True], [False], [True], [False]], seed=1)])
    with pytest.raises(CompareError, match="images_per_prompt"):
        compare_runs([a], [_run(tmp_path / "c", [[True, True]] * 4)])
    other = [PROMPTS[0], PROMPTS[1], PROMPTS[2], ("two_object", "a photo of two stars")]
    with pytest.raises(CompareError, match="line 3 differs"):
        compare_runs([a], [_run(tmp_path / "d", [[True], [False], [True], [False]], prompts=other)])
    with pytest.raises(CompareError, match="different suite lines"):
        compare_runs([a], [_run(tmp_path / "e", [[True], [False], [True]], prompts=PROMPTS[:3])])
    with pytest.raises(CompareError, match="summary.json"):
        compare_runs([a], [tmp_path])
    with pytest.raises(CompareError, match="as many runs"):
        compare_runs([a], [])


def test_the_command_line_prints_the_table_or_json(tmp_path, capsys) -> None:
    from t2i.cli import main

    a = _run(tmp_path / "a", [[True], [False], [True], [False]])
    b = _run(tmp_path / "b", [[True], [True], [True], [False]])
    assert main(["compare", "--a", str(a), "--b", str(b)]) == 0
    assert "single_object" in capsys.readouterr().out
    assert main(["compare", "--a", str(a), "--b", str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["diff"] == pytest.approx(0.25)
    assert main(["compare", "--a", str(a), "--b", str(a), str(b)]) == 2
    assert "as many runs" in capsys.readouterr().err


def _images(folder: Path, values: list[int], size: int = 8) -> None:
    """One flat grey image of each value per line, at the file names _run wrote (one image a line)."""
    from PIL import Image

    for i, v in enumerate(values):
        (folder / f"{i:05d}" / "samples").mkdir(parents=True)
        Image.new("RGB", (size, size), (v, v, v)).save(folder / f"{i:05d}" / "samples" / "0000.png")


def test_images_psnr_of_each_pair(tmp_path, capsys) -> None:
    from t2i.cli import main
    from t2i.evaluation.compare import MAX_PSNR

    a = _run(tmp_path / "a", [[True], [False], [True], [False]])
    b = _run(tmp_path / "b", [[True], [False], [True], [False]])
    _images(a, [0, 0, 100, 100])
    _images(b, [0, 51, 100, 151])  # two identical pairs, two off by 51/255 = 0.2: PSNR 10 log10(1/0.04)
    c = compare_runs([a], [b], images=True)
    off = 10 * math.log10(1 / 0.2 ** 2)
    assert c.psnr is not None and c.psnr.n == 4 and c.psnr.identical == 2
    assert c.psnr.mean == pytest.approx((2 * MAX_PSNR + 2 * off) / 4, abs=1e-3)
    assert "PSNR" in format_comparison(c) and "psnr" in c.to_dict()
    assert compare_runs([a], [b]).psnr is None  # only when asked
    assert main(["compare", "--a", str(a), "--b", str(b), "--images"]) == 0
    assert "2 identical" in capsys.readouterr().out


def test_images_that_cannot_pair_are_refused(tmp_path) -> None:
    a = _run(tmp_path / "a", [[True], [False], [True], [False]])
    b = _run(tmp_path / "b", [[True], [False], [True], [False]])
    _images(a, [0, 0, 0, 0])
    with pytest.raises(CompareError, match="cannot read"):
        compare_runs([a], [b], images=True)  # B has no image files
    _images(b, [0, 0, 0, 0], size=16)
    with pytest.raises(CompareError, match="8x8"):
        compare_runs([a], [b], images=True)
