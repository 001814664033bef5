"""Tests for the `t2i` command line, run in-process with a fake backend (no model weights needed)."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from t2i.cli import main
from t2i.metadata import build_pnginfo, read_image_metadata
from t2i.registry import Licence, ModelError, ModelRegistry, ModelSpec
from t2i.types import GenerationRequest

from .cli_checks import one_line_error as assert_one_line_error
from .fake_backend import fake_registry

FAKE_LICENCE = Licence("Fake Test Licence", "https://example.invalid/fake", "Only for tests.")
FAKE_SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", FAKE_LICENCE, "deterministic noise for tests",
                      {"steps": 3, "guidance": 1.5, "width": 16, "height": 16, "sampler": "euler",
                       "negative_prompt": "blurry"})


@pytest.fixture
def registry() -> ModelRegistry:
    return fake_registry(FAKE_SPEC)


@pytest.fixture(autouse=True)
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in tmp_path with its own t2i state folder and no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2I_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


Run = Callable[..., tuple[int, str, str]]



def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def today_dirs() -> set[str]:
    """Today's date (and tomorrow's, in case the test runs across midnight)."""
    today = datetime.date.today()
    return {today.isoformat(), (today + datetime.timedelta(days=1)).isoformat()}


# --------------------------------------------------------------------------- generate


def test_generate_into_folder_prints_paths(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a red circle", "--model", "fake", "--seed", "7", "--n", "2", "--out", "imgs")
    assert code == 0
    printed = out.splitlines()
    assert printed == [str(Path("imgs") / "00000-7.png"), str(Path("imgs") / "00001-8.png")]
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == ["00000-7.png", "00001-8.png"]
    for k, line in enumerate(printed):
        meta = read_image_metadata(tmp_path / line)
        assert meta.seed == 7 + k
        assert meta.index == k
        assert meta.request is not None
        assert meta.request.prompt == "a red circle"
        assert meta.request.model == "fake"
        assert meta.request.steps == 3 and meta.request.negative_prompt == "blurry"
    assert not np.array_equal(pixels(tmp_path / printed[0]), pixels(tmp_path / printed[1]))


def test_generate_progress_bar_starts_with_its_total(run: Run, tmp_path: Path) -> None:
    code, _, err = run("generate", "a red circle", "--model", "fake", "--n", "2", "--out", "imgs")
    assert code == 0
    bar = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("generating")]
    # every line shows the total (the fake backend's 3 steps for each of 2 images): never a bare
    # "generating: 0step" before it
    assert bar and all(re.search(r"\d+/6 ", line) for line in bar), bar
    assert "6/6" in bar[-1]


def test_generate_default_location_and_numbering(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a red circle", "--model", "fake", "--seed", "7")
    assert code == 0
    first = Path(out.strip())
    assert not first.is_absolute()
    assert first.parts[0] == "outputs"
    assert first.parts[1] in today_dirs()
    assert first.name == "00000-7.png"
    assert (tmp_path / first).is_file()

    code, out, _ = run("generate", "a red circle", "--model", "fake", "--seed", "7")
    assert code == 0
    second = Path(out.strip())
    assert second.parent == first.parent
    assert second.name == "00001-7.png"
    assert np.array_equal(pixels(tmp_path / first), pixels(tmp_path / second))


def test_generate_settings_flags_are_recorded(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a cat", "--model", "fake", "--seed", "3", "--steps", "2", "--cfg", "4",
                       "--size", "8x24", "--sampler", "ddim", "--negative", "", "--option", "tile=true",
                       "--out", "cat.png")
    assert code == 0
    assert out.strip() == "cat.png"
    meta = read_image_metadata(tmp_path / "cat.png")
    assert meta.request is not None
    assert (meta.request.steps, meta.request.guidance, meta.request.sampler) == (2, 4.0, "ddim")
    assert (meta.request.width, meta.request.height) == (8, 24)
    assert meta.request.negative_prompt == ""
    assert dict(meta.request.model_options) == {"tile": True}
    assert pixels(tmp_path / "cat.png").shape == (24, 8, 3)


def test_generate_from_image_reproduces_pixels(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "two stars", "--model", "fake", "--seed", "7", "--n", "3", "--out", "batch")
    assert code == 0
    chosen = tmp_path / out.splitlines()[1]
    assert chosen.name == "00001-8.png"

    code, out, _ = run("generate", "--from", str(chosen), "--out", "other.png")
    assert code == 0
    assert out.strip() == "other.png"
    assert np.array_equal(pixels(tmp_path / "other.png"), pixels(chosen))
    meta = read_image_metadata(tmp_path / "other.png")
    assert meta.seed == 8 and meta.index == 0
    assert meta.request is not None and meta.request.n_images == 1
    assert meta.request.prompt == "two stars"


def test_generate_never_overwrites(run: Run, tmp_path: Path) -> None:
    assert run("generate", "x", "--model", "fake", "--seed", "1", "--out", "same.png")[0] == 0
    before = (tmp_path / "same.png").read_bytes()
    code, out, err = run("generate", "x", "--model", "fake", "--seed", "2", "--out", "same.png")
    assert code == 2
    assert "already exists" in err and "Traceback" not in err
    assert (tmp_path / "same.png").read_bytes() == before


def hostile_png(path: Path, t2i_text: str | None = None, parameters: str | None = None) -> Path:
    info = PngInfo()
    if parameters is not None:
        info.add_itxt("parameters", parameters)
    if t2i_text is not None:
        info.add_itxt("t2i", t2i_text)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, pnginfo=info)
    return path


def valid_record() -> dict:
    """The t2i chunk that t2i itself writes, as a dict (read back from an in-memory PNG)."""
    request = GenerationRequest(prompt="p", model="fake", seed=1, steps=2)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=build_pnginfo(request, 1, 0, "p", ""))
    buffer.seek(0)
    with Image.open(buffer) as im:
        return json.loads(im.info["t2i"])


def _unknown_request_key() -> str:
    record = valid_record()
    record["request"]["evil"] = "__import__('os')"
    return json.dumps(record)


def _bad_value_request() -> str:
    record = valid_record()
    record["request"]["steps"] = 10**9
    return json.dumps(record)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: hostile_png(p, "{this is not json"), "not valid JSON"),
        (lambda p: hostile_png(p, "[]"), "not a JSON object"),
        (lambda p: hostile_png(p, _unknown_request_key()), "unknown keys: evil"),
        (lambda p: hostile_png(p, _bad_value_request()), "steps"),
        (lambda p: hostile_png(p, "[" * 10_000 + "]" * 10_000), "deeper"),
        (lambda p: hostile_png(p, parameters="a cat\nSteps: 20, Seed: 1"), "no t2i metadata"),
        (lambda p: hostile_png(p), "no t2i metadata"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "PNG"),
        (lambda p: p.write_text("not an image", encoding="utf-8"), "not a PNG"),
        (lambda p: None, "cannot read it"),
    ],
    ids=["not-json", "not-object", "unknown-request-key", "bad-request-value", "deep", "a1111-only", "no-chunks",
         "truncated", "text-file", "missing"],
)
def test_generate_from_hostile_image_is_one_line_error(
    run: Run, tmp_path: Path, make: Callable[[Path], Any], needle: str
) -> None:
    path = tmp_path / "hostile.png"
    make(path)
    code, out, err = run("generate", "--from", str(path), "--out", "never.png")
    assert_one_line_error(code, out, err, str(path), needle)
    assert not (tmp_path / "never.png").exists()


def test_from_plus_prompt_is_an_error(run: Run, tmp_path: Path) -> None:
    code, out, err = run("generate", "a prompt", "--from", str(tmp_path / "x.png"))
    assert_one_line_error(code, out, err, "either a prompt or --from")


@pytest.mark.parametrize("argv", [("generate",), ("generate", ""), ("generate", "   ")], ids=["none", "empty", "blank"])
def test_empty_prompt_is_an_error(run: Run, tmp_path: Path, argv: tuple[str, ...]) -> None:
    code, out, err = run(*argv, "--model", "fake")
    assert_one_line_error(code, out, err, "a prompt is required")
    assert not (tmp_path / "outputs").exists()


def test_unknown_model_lists_registered_names(run: Run, tmp_path: Path) -> None:
    code, out, err = run("generate", "x", "--model", "koala-700")
    assert_one_line_error(code, out, err, "unknown model 'koala-700'", "koala-700m", "shapes-xl", "fake")
    assert not (tmp_path / "outputs").exists()


def test_invalid_request_value_is_an_error(run: Run) -> None:
    code, out, err = run("generate", "x", "--model", "fake", "--steps", "0")
    assert_one_line_error(code, out, err, "steps")


def test_licence_notice_only_the_first_time(run: Run, tmp_path: Path) -> None:
    notice = "fake is licensed under Fake Test Licence (https://example.invalid/fake). Only for tests."
    code, _, err = run("generate", "x", "--model", "fake", "--seed", "1")
    assert code == 0
    assert notice in err
    code, _, err = run("generate", "x", "--model", "fake", "--seed", "2")
    assert code == 0
    assert "licensed under" not in err
    assert (tmp_path / "home" / "licences-seen.json").is_file()


def test_debug_makes_errors_raise(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        run("--debug", "generate", "x", "--model", "koala-700")
    hostile = hostile_png(tmp_path / "h.png", "{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        run("--debug", "generate", "--from", str(hostile))


# --------------------------------------------------------------------------- info and models


def test_info_prints_parameters_and_the_record(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("generate", "a red circle", "--model", "fake", "--seed", "7", "--n", "2", "--out", "d")
    assert code == 0
    path = tmp_path / out.splitlines()[1]
    meta = read_image_metadata(path)
    code, out, err = run("info", str(path))
    assert code == 0
    assert err == ""
    assert meta.parameters is not None
    assert out.startswith(meta.parameters + "\n\n")  # A1111's text as written, then the record's sections
    assert "Seed: 8" in out and "Model: fake" in out
    record = out[len(meta.parameters) + 2:].splitlines()
    assert [line for line in record if line and not line.startswith(" ")] == ["image", "request", "runtime"]
    rows = [line.split(None, 1) for line in record if line.startswith("  ")]
    assert ["seed", "8"] in rows and ["model", "fake"] in rows and ["steps", "3"] in rows
    assert ["sampler", "euler (A1111: Euler)"] in rows  # the fake model's default, with A1111's name


def test_info_on_a1111_image_prints_parameters_only(run: Run, tmp_path: Path) -> None:
    path = hostile_png(tmp_path / "a1111.png", parameters="a cat\nSteps: 20, Seed: 1")
    code, out, _ = run("info", str(path))
    assert code == 0
    assert out == "a cat\nSteps: 20, Seed: 1\n"


def test_info_without_metadata_is_an_error(run: Run, tmp_path: Path) -> None:
    path = hostile_png(tmp_path / "plain.png")
    code, out, err = run("info", str(path))
    assert_one_line_error(code, out, err, str(path), "no generation metadata")


def test_models_lists_registered_models(run: Run) -> None:
    code, out, _ = run("models", reg=None)
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert "shapes-xl" in rows and "koala-700m" in rows
    assert out.splitlines()[0].split()[:4] == ["name", "kind", "role", "status"]
    assert rows["shapes-xl"][3] == "ready" and rows["tipo-tiny"][3] == "ready"
    assert rows["karlo-v1-alpha"][3] == "unavailable"  # no unclip backend is built: said before any use
    assert rows["koala-700m"][3] in ("download", "ready")  # ready only where the hub cache holds it
    code, out, _ = run("models")
    assert code == 0
    assert "fake" in [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("generate",),
        ("info",),
        ("models",),
        ("world",),
        ("world", "sample"),
        ("world", "score"),
        ("world", "boxes"),
        ("world", "suite"),
        ("world", "render-suite"),
        ("world", "dataset"),
        ("world", "detector-check"),
    ],
    ids=lambda argv: " ".join(argv) or "t2i",
)
def test_help_has_examples(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: t2i" in out
    assert "example" in out.lower()


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: t2i" in capsys.readouterr().err


# --------------------------------------------------------------------------- the installed command


def test_console_script_runs(tmp_path: Path) -> None:
    env = {**os.environ, "T2I_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "t2i.cli", "models"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "shapes-xl" in proc.stdout
    assert "koala-700m" in proc.stdout


def test_from_an_image_naming_a_local_model_path_needs_confirmation(run: Run, tmp_path: Path) -> None:
    record = valid_record()
    record["request"]["model"] = str(tmp_path / "some-local-model")
    path = hostile_png(tmp_path / "local.png", json.dumps(record))
    code, out, err = run("generate", "--from", str(path), "--out", "never.png")
    assert_one_line_error(code, out, err, str(path), "pass --model to choose one")
    assert not (tmp_path / "never.png").exists()
