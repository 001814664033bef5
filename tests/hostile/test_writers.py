"""Every command that writes, taken from the CLI's own parser: it never overwrites, never writes through a
link, writes a batch whole or not at all, and leaves no temporary file when stopped."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from t2i.cli.main import WRITE_DESTS, build_parser

from ..cli_checks import one_line_error


def _writers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every (sub)command of the parser with an argument naming something it writes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _writers(sub, (*prefix, name))
            return
    if any(a.dest in WRITE_DESTS for a in parser._actions):
        yield prefix


def _image(path: Path) -> Path:
    Image.new("RGB", (16, 16), (255, 0, 0)).save(path)
    return path


# command -> (what its target is, argv that writes `target`)
CASES: dict[tuple[str, ...], tuple[str, Callable[[Path], list[str]]]] = {
    ("generate",): ("file", lambda t: ["generate", "x", "--model", "fake", "--out", str(t)]),
    ("compose",): ("file", lambda t: ["compose", "a red circle", "--preview", str(t)]),
    ("world", "sample"): ("folder", lambda t: ["world", "sample", "--n", "2", "--out", str(t)]),
    ("world", "dataset"): ("folder", lambda t: ["world", "dataset", "--n", "2", "--out", str(t)]),
    ("world", "suite"): ("file", lambda t: ["world", "suite", "--per-task", "1", "--out", str(t)]),
    ("world", "render-suite"): ("folder", lambda t: ["world", "render-suite", "--out", str(t)]),
    ("world", "score"): ("file", lambda t: ["world", "score", str(t.parent), "--results", str(t)]),
    ("world", "boxes"): ("file", lambda t: ["world", "boxes", str(_image(t.parent / "in.png")), "--out", str(t)]),
    ("eval",): ("folder", lambda t: ["eval", "--model", "fake", "--out", str(t)]),
    **{("train", recipe): ("folder", lambda t, r=recipe: ["train", r, "--smoke", "--work", str(t), "--out",
                                                          str(t) + "-o"])
       for recipe in ("shapes-xl", "paella-tiny", "tipo-tiny", "omost-tiny", "distill")},
    ("convert",): ("file", lambda t: ["convert", str(t.parent / "in.pt"), str(t)]),
}


def test_every_writing_command_has_a_case():
    assert set(_writers(build_parser())) == set(CASES)


@pytest.mark.parametrize("command", sorted(CASES))
def test_an_existing_target_is_never_overwritten(run, tmp_path, command):
    kind, argv = CASES[command]
    target = tmp_path / ("target.png" if kind == "file" else "target")
    if command == ("convert",):
        target = target.with_suffix(".safetensors")
    target.write_bytes(b"keep me")
    one_line_error(*run(*argv(target)), str(target))
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("command", sorted(CASES))
def test_a_link_is_never_written_through(run, tmp_path, command):
    kind, argv = CASES[command]
    victim = tmp_path / "victim"
    if kind == "folder":
        victim.mkdir()
    else:
        victim.write_bytes(b"keep me")
    link = tmp_path / ("link.png" if kind == "file" else "link")
    if command == ("convert",):
        link = link.with_suffix(".safetensors")
    link.symlink_to(victim)
    one_line_error(*run(*argv(link)), "symbolic link")
    if kind == "folder":
        assert list(victim.iterdir()) == []
    else:
        assert victim.read_bytes() == b"keep me"


def test_world_sample_checks_every_name_before_writing_any(run, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "00001.png").write_bytes(b"keep me")
    one_line_error(*run("world", "sample", "--n", "3", "--out", "s"), "00001.png")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["00001.png"]


def test_render_suite_refuses_a_folder_that_is_not_empty(run, tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "note.txt").write_text("mine")
    one_line_error(*run("world", "render-suite", "--out", "gt"), "not empty")


def test_a_batch_whose_last_seed_is_out_of_range_writes_nothing(run, tmp_path):
    one_line_error(*run("generate", "x", "--model", "fake", "--seed", str(2**63 - 1), "--n", "2", "--out", "o"),
                   "choose a smaller seed")
    assert not (tmp_path / "o").exists()


def test_a_batch_whose_later_name_is_taken_writes_nothing(run, tmp_path):
    (tmp_path / "batch-1.png").write_bytes(b"keep me")
    one_line_error(*run("generate", "x", "--model", "fake", "--n", "3", "--out", "batch.png"), "batch-1.png")
    assert sorted(p.name for p in tmp_path.glob("batch*")) == ["batch-1.png"]


def test_an_out_ending_in_a_separator_is_a_folder(run, tmp_path):
    code, out, err = run("generate", "x", "--model", "fake", "--seed", "3", "--out", "shots.png/")
    assert code == 0, err
    assert (tmp_path / "shots.png").is_dir()
    assert [p.name for p in (tmp_path / "shots.png").iterdir()] == ["00000-3.png"]


def test_ctrl_c_while_saving_names_the_images_already_written(run, tmp_path, monkeypatch):
    from t2i.outputs import OutputWriter

    real = OutputWriter.write
    calls = []

    def write_twice_then_interrupt(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(OutputWriter, "write", write_twice_then_interrupt)
    code, out, err = run("generate", "x", "--model", "fake", "--seed", "5", "--n", "4", "--out", "o")
    assert code == 130
    assert out.splitlines() == [str(Path("o") / "00000-5.png"), str(Path("o") / "00001-6.png")]
    assert "stopped after writing 2 of 4 images" in err
    assert err.rstrip().endswith("t2i: cancelled")


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "many"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "t2i.cli", "world", "sample", "--n", "100000", "--size", "16",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.glob("*.png"))) < 20:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "t2i: terminated"
    assert list(out.glob(".*.tmp")) == []
    assert 20 <= len(list(out.glob("*.png"))) < 100000
