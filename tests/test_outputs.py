"""Tests for t2i.outputs: numbering, atomic saves, never overwriting."""

from __future__ import annotations

import datetime
import errno
import os
from pathlib import Path

import pytest
from PIL import Image

from t2i import outputs
from t2i.metadata import build_pnginfo, read_image_metadata
from t2i.outputs import OutputWriter, default_output_dir, next_output_path, save_png_atomic
from t2i.types import GenerationRequest


def image(color: tuple[int, int, int] = (10, 20, 30)) -> Image.Image:
    """A tiny RGB image."""
    return Image.new("RGB", (8, 8), color)


def listing(directory: Path) -> list[str]:
    """Every name in directory, hidden ones included, sorted."""
    return sorted(os.listdir(directory))


def test_default_output_dir() -> None:
    assert default_output_dir(Path("outputs"), datetime.date(2024, 3, 7)) == Path("outputs/2024-03-07")


def test_next_output_path_empty_and_missing(tmp_path: Path) -> None:
    assert next_output_path(tmp_path, 42) == tmp_path / "00000-42.png"
    assert next_output_path(tmp_path / "missing", 7) == tmp_path / "missing" / "00000-7.png"
    assert not (tmp_path / "missing").exists()


def test_next_output_path_continues_after_highest(tmp_path: Path) -> None:
    for name in ["00003-1.png", "00007-99.png", "00005-x.txt", "1234-5.png", "notes.txt", ".00050-1.png.tmp"]:
        (tmp_path / name).write_bytes(b"")
    assert next_output_path(tmp_path, 11) == tmp_path / "00008-11.png"


def test_next_output_path_grows_past_five_digits(tmp_path: Path) -> None:
    (tmp_path / "99999-1.png").write_bytes(b"")
    assert next_output_path(tmp_path, 2) == tmp_path / "100000-2.png"
    (tmp_path / "100000-2.png").write_bytes(b"")
    assert next_output_path(tmp_path, 3) == tmp_path / "100001-3.png"


def test_next_output_path_rejects_negative_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        next_output_path(tmp_path, -1)


def test_save_png_atomic_writes_readable_png_with_metadata(tmp_path: Path) -> None:
    request = GenerationRequest(prompt="a cat 猫", seed=5)
    target = tmp_path / "deep" / "er" / "x.png"
    result = save_png_atomic(image(), target, build_pnginfo(request, 5, 0, "a cat 猫", ""))
    assert result == target
    assert listing(target.parent) == ["x.png"]
    with Image.open(target) as im:
        assert im.size == (8, 8)
    assert read_image_metadata(target).request == request


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_png_atomic_respects_umask(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    target = save_png_atomic(image(), tmp_path / "x.png")
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_png_atomic_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists"):
        save_png_atomic(image(), target)
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["x.png"]


def test_save_png_atomic_race_on_publish_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.png"
    real_link = os.link
    seen: list[str] = []

    def link_after_someone_else(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        Path(dst).write_bytes(b"other process")  # appears between our check and publish
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_someone_else)
    with pytest.raises(FileExistsError, match="already exists"):
        save_png_atomic(image(), target)
    assert target.read_bytes() == b"other process"
    assert listing(tmp_path) == ["x.png"]
    assert seen[0].startswith(".") and seen[0].endswith(".tmp")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError, OSError])
def test_failed_encode_leaves_no_file(tmp_path: Path, exc: type[BaseException]) -> None:
    img = image()

    def broken_save(*args: object, **kwargs: object) -> None:
        raise exc("interrupted while encoding")

    img.save = broken_save  # type: ignore[method-assign]
    with pytest.raises(exc):
        save_png_atomic(img, tmp_path / "out" / "x.png")
    assert listing(tmp_path / "out") == []


def test_interrupt_at_publish_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_link(src: str, dst: str) -> None:
        assert Path(src).parent == Path(dst).parent
        assert Path(src).stat().st_size > 0  # the full PNG was written before publishing
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", interrupted_link)
    with pytest.raises(KeyboardInterrupt):
        save_png_atomic(image(), tmp_path / "x.png")
    assert listing(tmp_path) == []


def test_no_hard_links_raises_without_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def no_rename(*args: object) -> None:
        raise AssertionError("must not fall back to rename/replace")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "rename", no_rename)
    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="does not support hard links"):
        save_png_atomic(image(), tmp_path / "x.png")
    assert listing(tmp_path) == []


def test_writer_numbers_in_dated_folder(tmp_path: Path) -> None:
    writer = OutputWriter(root=tmp_path)
    first = writer.write(image(), 5)
    second = writer.write(image(), 6)
    today = tmp_path / datetime.date.today().isoformat()
    assert first == today / "00000-5.png"
    assert second == today / "00001-6.png"


def test_writer_continues_numbering_in_out_folder(tmp_path: Path) -> None:
    (tmp_path / "00041-1.png").write_bytes(b"old")
    writer = OutputWriter(out=tmp_path)
    assert writer.write(image(), 9) == tmp_path / "00042-9.png"
    assert (tmp_path / "00041-1.png").read_bytes() == b"old"


def test_writer_out_folder_is_created(tmp_path: Path) -> None:
    writer = OutputWriter(out=tmp_path / "new" / "folder")
    assert writer.write(image(), 1) == tmp_path / "new" / "folder" / "00000-1.png"


def test_writer_retries_when_number_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process (same seed) published 00000 and 00001 after our scan: the stale scan
    # says "empty", so publishing hits FileExistsError twice before 00002 works.
    for name in ["00000-3.png", "00001-3.png"]:
        (tmp_path / name).write_bytes(b"theirs")
    monkeypatch.setattr(outputs, "_highest_number", lambda directory: -1)
    path = OutputWriter(out=tmp_path).write(image(), 3)
    assert path == tmp_path / "00002-3.png"
    assert (tmp_path / "00000-3.png").read_bytes() == b"theirs"
    assert (tmp_path / "00001-3.png").read_bytes() == b"theirs"
    assert not [n for n in listing(tmp_path) if n.endswith(".tmp")]


def test_writer_gives_up_after_a_few_attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_taken(src: str, dst: str) -> None:
        raise FileExistsError(errno.EEXIST, "File exists")

    monkeypatch.setattr(os, "link", always_taken)
    with pytest.raises(FileExistsError, match="free file name"):
        OutputWriter(out=tmp_path).write(image(), 3)
    assert listing(tmp_path) == []


def test_writer_exact_png(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "cat.png"
    assert OutputWriter(out=target).write(image(), 1) == target
    assert target.exists()


def test_writer_exact_png_collision_raises(tmp_path: Path) -> None:
    target = tmp_path / "cat.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="choose another"):
        OutputWriter(out=target).write(image(), 1)
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["cat.png"]


def test_writer_exact_png_several_images_get_suffixes(tmp_path: Path) -> None:
    writer = OutputWriter(out=tmp_path / "cat.PNG", n_images=2)
    assert writer.write(image(), 1) == tmp_path / "cat-0.PNG"
    assert writer.write(image(), 2) == tmp_path / "cat-1.PNG"
    assert listing(tmp_path) == ["cat-0.PNG", "cat-1.PNG"]
    with pytest.raises(FileExistsError):
        writer.write(image(), 2, index=1)


def test_writer_exact_png_single_image_refuses_a_second(tmp_path: Path) -> None:
    writer = OutputWriter(out=tmp_path / "cat.png")
    writer.write(image(), 1)
    with pytest.raises(ValueError):
        writer.write(image(), 2)


def test_writer_rejects_other_formats_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only PNG"):
        OutputWriter(out=tmp_path / "cat.jpg")
    existing = tmp_path / "notes"
    existing.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        OutputWriter(out=existing)
    with pytest.raises(ValueError):
        OutputWriter(n_images=0)


def test_writer_png_named_folder_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "odd.png"
    folder.mkdir()
    assert OutputWriter(out=folder).write(image(), 4) == folder / "00000-4.png"
