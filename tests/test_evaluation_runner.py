"""The eval runner with a fake image backend: layout, seeds, resume, ground-truth programs, CLI."""

from __future__ import annotations

import json

import pytest

from t2i.cli import main
from t2i.compose import parse_canvas
from t2i.evaluation.runner import ground_truth_program, run_suite
from t2i.registry import Licence, ModelSpec
from t2i.world.suite import build_suite, write_suite

from .fake_backend import NoiseBackend, fake_registry

SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("x", "", "tests"), "noise",
                 {"steps": 1, "guidance": 1.0, "width": 16, "height": 16, "sampler": "euler", "negative_prompt": ""})


@pytest.fixture
def recorded():
    backends: list[NoiseBackend] = []
    registry = fake_registry(SPEC)

    def loader(resolved, options):
        backends.append(NoiseBackend(resolved, options))
        return backends[-1]

    registry.register_loader("sdxl", loader)
    return registry, backends


def test_layout_seeds_and_resume(recorded, tmp_path):
    registry, backends = recorded
    lines = build_suite(per_task=1, seed=0)[:3]
    run = run_suite(lines, registry, "fake", tmp_path, images_per_prompt=2, seed=10)
    assert run.generated == 6
    assert 0 < run.generate_seconds <= run.seconds  # generation alone, within the whole run
    for i in range(3):
        folder = tmp_path / f"{i:05d}"
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["0000.png", "0001.png"]
        assert json.loads((folder / "metadata.jsonl").read_text())["prompt"] == lines[i].prompt
    assert [r.seed for r in backends[0].requests] == [10, 12, 14]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 10 and set(summary["per_task"]) <= {"single_object", "two_object", "counting",
                                                                  "colors", "position", "color_attr"}
    (tmp_path / "00001" / "samples" / "0001.png").unlink()
    again = run_suite(lines, registry, "fake", tmp_path, images_per_prompt=2, seed=10)
    assert again.generated == 1 and [r.seed for r in backends[-1].requests] == [12]
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 6


def test_a_folder_begun_with_other_settings_is_not_resumed(recorded, tmp_path):
    registry, _ = recorded
    lines = build_suite(per_task=1, seed=0)[:2]
    run_suite(lines, registry, "fake", tmp_path, seed=3, settings={"guidance": 2.0})
    assert json.loads((tmp_path / "run.json").read_text())["settings"] == {"guidance": 2.0}
    run_suite(lines, registry, "fake", tmp_path, seed=3, settings={"guidance": 2.0})  # the same run: resumes
    for change in ({"seed": 4}, {"settings": {"guidance": 3.0}}, {"images_per_prompt": 2}):
        kw = {"seed": 3, "settings": {"guidance": 2.0}, **change}
        with pytest.raises(ValueError, match="holds images made with other"):
            run_suite(lines, registry, "fake", tmp_path, **kw)
    # the model's own defaults changed since the folder was begun (new shipped defaults, say)
    record = json.loads((tmp_path / "run.json").read_text())
    record["model_defaults"]["guidance"] = 9.0
    (tmp_path / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="model_defaults"):
        run_suite(lines, registry, "fake", tmp_path, seed=3, settings={"guidance": 2.0})


def test_ground_truth_programs_are_the_lines_own_scenes(recorded, tmp_path):
    registry, backends = recorded
    lines = build_suite(per_task=1, seed=1)[:2]
    run_suite(lines, registry, "fake", tmp_path, program_for=ground_truth_program)
    for line, req in zip(lines, backends[0].requests, strict=True):
        canvas = parse_canvas(req.compose.program)
        assert sorted(c.color for c in canvas.components) == sorted(o.color for o in line.scene.objects)
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["programs"] == "ground_truth_program"


def test_cli_eval(recorded, tmp_path, capsys):
    registry, _ = recorded
    suite = tmp_path / "suite.jsonl"
    write_suite(build_suite(per_task=1, seed=2)[:2], suite)
    assert main(["eval", "--suite", str(suite), "--model", "fake", "--out", str(tmp_path / "o"), "--gt-program",
                 "--region-mode", "couple", "--region-text", "own", "--color-start", "0.9", "--hires", "2"],
                registry=registry) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["model_options"] == {"region_mode": "couple", "region_text": "own",
                                                    "init_strength": 0.9, "hires_scale": 2.0}
    assert "overall" in capsys.readouterr().out
    assert main(["eval", "--suite", str(suite), "--model", "fake", "--out", str(tmp_path / "p"), "--gt-program",
                 "--compose"], registry=registry) == 2


def test_eval_gives_the_pipeline_nothing_but_each_lines_prompt(recorded, tmp_path, monkeypatch):
    # the pipeline picks a prompt's class (and so its settings) from the request alone: an eval run must not
    # hand it the line's task, scene or requirements, or the suite would score a pipeline users cannot run
    import dataclasses

    import t2i.evaluation.runner as runner

    registry, _ = recorded
    given = []

    def spy(request, *args, **kwargs):
        given.append(request)
        return real(request, *args, **kwargs)

    real = runner.generate
    monkeypatch.setattr(runner, "generate", spy)
    lines = build_suite(per_task=1, seed=3)
    run_suite(lines, registry, "fake", tmp_path, seed=5, settings={"steps": 1})
    assert [r.prompt for r in given] == [line.prompt for line in lines]
    assert [r.seed for r in given] == [5 + i for i in range(len(lines))]
    rest = [dataclasses.replace(r, prompt="-", seed=0) for r in given]
    assert all(r == rest[0] for r in rest)
