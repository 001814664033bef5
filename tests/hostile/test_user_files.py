"""Every function and command that reads a file a user names: a FIFO, a link to a FIFO and a folder are refused
at once (nothing blocks), and a link to a regular file is read like the file."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from t2i.metadata import read_image_metadata
from t2i.userfiles import read_user_text
from t2i.world.detector import load_rgb
from t2i.world.suite import build_suite, read_suite

from ..cli_checks import one_line_error

SECONDS = 10  # far past what a refusal takes; a read that blocks on a FIFO never returns


def _within(fn: Callable[[], object], fifo: Path | None) -> BaseException | None:
    """Run fn in a thread; the exception it raised (None when it returned).  Fails when it blocks, after
    releasing it by opening the FIFO's other end."""
    box: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            box.append(None)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(SECONDS)
    if thread.is_alive():
        if fifo is not None:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"{fn} blocked")
    return box[0]


def _good_file(kind: str, path: Path) -> Path:
    if kind == "suite":
        path.write_text(json.dumps(build_suite(1)[0].to_dict()) + "\n")
    elif kind == "image":
        Image.new("RGB", (8, 8), (0, 0, 255)).save(path, format="PNG")
    else:
        path.write_text("canvas = Canvas()\n")
    return path


READERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "read_suite": ("suite", read_suite),
    "load_rgb": ("image", load_rgb),
    "read_image_metadata": ("image", read_image_metadata),
    "read_user_text": ("text", read_user_text),
}


def _special(kind: str, tmp_path: Path) -> Path:
    if kind == "fifo":
        os.mkfifo(tmp_path / "f")
        return tmp_path / "f"
    if kind == "link-to-fifo":
        os.mkfifo(tmp_path / "f")
        (tmp_path / "l").symlink_to(tmp_path / "f")
        return tmp_path / "l"
    (tmp_path / "d").mkdir()
    return tmp_path / "d"


@pytest.mark.parametrize("special", ["fifo", "link-to-fifo", "folder"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_readers_refuse_what_is_not_a_regular_file(tmp_path, reader, special):
    path = _special(special, tmp_path)
    error = _within(lambda: READERS[reader][1](path), path if "fifo" in special else None)
    assert isinstance(error, (OSError, ValueError)), error
    assert ("folder" if special == "folder" else "not a regular file") in str(error)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_readers_follow_a_link_to_a_regular_file(tmp_path, reader):
    kind, fn = READERS[reader]
    real = _good_file(kind, tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    assert _within(lambda: fn(tmp_path / "link"), None) is None


def _fifo_score_folder(tmp_path: Path) -> list[str]:
    (tmp_path / "run" / "00000" / "samples").mkdir(parents=True)
    os.mkfifo(tmp_path / "run" / "00000" / "samples" / "0000.png")
    (tmp_path / "suite.jsonl").write_text(json.dumps(build_suite(1)[0].to_dict()) + "\n")
    return ["world", "score", str(tmp_path / "run"), "--suite", str(tmp_path / "suite.jsonl"),
            "--results", str(tmp_path / "r.jsonl")]


COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "generate --program": lambda f, t: ["generate", "x", "--model", "fake", "--program", str(f)],
    "generate --from": lambda f, t: ["generate", "--from", str(f)],
    "info": lambda f, t: ["info", str(f)],
    "world score --suite": lambda f, t: ["world", "score", str(t), "--suite", str(f)],
    "world boxes": lambda f, t: ["world", "boxes", str(f), "--out", str(t / "b.png")],
    "eval --suite": lambda f, t: ["eval", "--model", "fake", "--suite", str(f), "--out", str(t / "e")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_refuse_a_fifo_in_one_line(run, tmp_path, command):
    os.mkfifo(tmp_path / "fifo")
    box: list[tuple[int, str, str]] = []
    assert _within(lambda: box.append(run(*COMMANDS[command](tmp_path / "fifo", tmp_path))), tmp_path / "fifo") \
        is None
    one_line_error(*box[0], "not a regular file")


def test_world_score_counts_a_fifo_image_as_unreadable(run, tmp_path):
    box: list[tuple[int, str, str]] = []
    argv = _fifo_score_folder(tmp_path)
    assert _within(lambda: box.append(run(*argv)), tmp_path / "run" / "00000" / "samples" / "0000.png") is None
    code, out, err = box[0]
    assert code == 0, err
    assert "not a regular file" in err
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert row["correct"] is False and "not a regular file" in row["reason"]
