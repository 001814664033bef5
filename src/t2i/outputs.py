"""Writing generated images: A1111-style numbering and atomic, never-overwriting saves.

Images go to ``outputs/YYYY-MM-DD/NNNNN-SEED.png`` by default, where NNNNN continues after
the highest number already in the folder.  `save_png_atomic` writes to a hidden temporary
file in the target folder, fsyncs it and publishes it with a hard link, which fails
rather than replace an existing file; a failed or cancelled write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

DEFAULT_ROOT = Path("outputs")
PUBLISH_ATTEMPTS = 16

_NUMBERED = re.compile(r"^(\d{5,})-")
# Suffixes that mean "a file of another format", not "a directory named so".
_OTHER_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"})
# errnos with which os.link says "this filesystem cannot do hard links".
_NO_LINK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV")
    if hasattr(errno, name)
)


def default_output_dir(root: Path, day: datetime.date) -> Path:
    """Return ``root / "YYYY-MM-DD"`` for `day`."""
    return Path(root) / day.isoformat()


def _highest_number(directory: Path) -> int:
    """The highest A1111 number (``^\\d{5,}-``) used in `directory`, or -1 if none."""
    highest = -1
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                m = _NUMBERED.match(entry.name)
                if m:
                    highest = max(highest, int(m.group(1)))
    except (FileNotFoundError, NotADirectoryError):
        return -1
    return highest


def _numbered_name(number: int, seed: int) -> str:
    """``NNNNN-SEED.png`` with at least five digits."""
    return f"{number:05d}-{seed}.png"


def _check_seed(seed: int) -> int:
    """A non-negative int (not bool), else ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def next_output_path(directory: Path, seed: int) -> Path:
    """Return ``directory / "NNNNN-SEED.png"`` with the next free A1111 number.

    NNNNN is one more than the highest number used by any entry of `directory` whose name
    matches ``^\\d{5,}-`` (zero padded to five digits, growing past 99999), or 00000 when
    the directory is empty or missing.  Nothing is created.
    """
    _check_seed(seed)
    directory = Path(directory)
    return directory / _numbered_name(_highest_number(directory) + 1, seed)


def _file_mode() -> int:
    """The mode a plainly created file would get (0o666 minus the umask), read without
    changing the process umask; 0o644 where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_dir(directory: Path) -> None:
    """Best effort: make the new directory entry durable (not possible on every OS)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _temp_beside(path: Path, write: Callable[[BinaryIO], None]) -> Iterator[str]:
    """The name of a temporary file beside `path` (``.<name>.<random>.tmp``) that `write(f)` filled, flushed
    and fsynced; removed on leaving unless it was renamed away, whatever the exception (KeyboardInterrupt
    included: the CLI turns SIGTERM into one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode())  # mkstemp makes 0600 files
            write(f)
            f.flush()
            os.fsync(f.fileno())
        yield tmp_name
    finally:
        if tmp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def write_new_file(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Create the file `path` atomically, never overwriting and never writing through a link; return it.

    `write(f)` fills a temporary file in the same folder, which is published with ``os.link``: that fails
    if anything (a file, a folder, a symbolic link, even a dangling one) already has the name.  Parent
    folders are created.  Raises FileExistsError when `path` exists and OSError when the filesystem cannot
    make hard links (there is no non-atomic fallback).  A failed or cancelled write leaves nothing behind.
    """
    path = Path(path)
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, f"{path} already exists; not overwriting it", str(path))
    with _temp_beside(path, write) as tmp_name:
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"{path} already exists; not overwriting it", str(path)) from None
        except OSError as e:
            if e.errno in _NO_LINK_ERRNOS:
                raise OSError(
                    e.errno,
                    f"cannot publish {path} atomically: this filesystem does not support hard links "
                    f"({e.strerror}); choose an output folder on another filesystem",
                    str(path),
                ) from e
            raise
    _fsync_dir(path.parent)
    return path


def write_new_text(path: str | Path, text: str) -> Path:
    """`write_new_file` with UTF-8 text."""
    data = text.encode("utf-8")
    return write_new_file(path, lambda f: f.write(data))


def replace_file(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically, replacing the file there: for a command's own record in its
    own folder (a score's ``results.jsonl``), never for a file the user named.  A link or a folder at `path`
    is refused, not followed; an interrupted write leaves the old file whole."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise FileExistsError(errno.EEXIST, f"{path} is a link or not a regular file; not replacing it", str(path))
    data = text.encode("utf-8")
    with _temp_beside(path, lambda f: f.write(data)) as tmp_name:
        os.replace(tmp_name, path)
    _fsync_dir(path.parent)
    return path


def save_png_atomic(image: Image.Image, path: Path, pnginfo: PngInfo | None = None) -> Path:
    """Save `image` as a PNG at `path` with `write_new_file` (atomic, never overwriting); return `path`."""
    return write_new_file(path, lambda f: image.save(f, format="PNG", pnginfo=pnginfo))


def check_free(paths: list[Path]) -> None:
    """Raise FileExistsError naming the first of `paths` that exists (a file, folder or link), before a
    command writes any of them: a run either writes all its files or none."""
    for p in paths:
        if os.path.lexists(p):
            raise FileExistsError(errno.EEXIST, f"{p} already exists; t2i never overwrites (choose another "
                                  "output name)", str(p))


class OutputWriter:
    """Choose output paths and save images atomically.

    * ``out`` ending in ``.png`` (and not an existing directory): the exact path of a
      single image; with ``n_images > 1`` image k goes to ``<stem>-<k>.png``.  An existing
      file there raises FileExistsError: we never overwrite.
    * ``out`` another path: a directory (created if needed) where images are numbered
      ``NNNNN-SEED.png`` A1111-style.
    * no ``out``: numbered images in ``root/YYYY-MM-DD/`` (``root`` defaults to
      ``outputs``), the date taken when each image is written.
    """

    def __init__(self, root: Path | None = None, out: str | Path | None = None, *, n_images: int = 1) -> None:
        """Set up the destination; see the class docstring.  `out` given as text ending in a path separator
        (``shots.png/``) is a folder whatever its suffix.  Raises ValueError for an `out` that names a non-PNG
        image file or an existing non-directory file."""
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        folder = isinstance(out, str) and out.endswith(("/", os.sep))
        self.out = Path(out) if out is not None else None
        self.n_images = n_images
        self.exact: Path | None = None
        self.directory: Path | None = None
        self._written = 0
        self._lock = threading.Lock()
        if self.out is None:
            return
        if folder and self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out} exists and is not a folder")
        if folder:
            self.directory = self.out
        elif self.out.suffix.lower() == ".png" and not self.out.is_dir():
            self.exact = self.out
        elif self.out.suffix.lower() in _OTHER_IMAGE_SUFFIXES and not self.out.is_dir():
            raise ValueError(f"{self.out}: only PNG images are written; give a .png file name or a folder")
        elif self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out} exists and is not a folder; give a .png file name or a folder")
        else:
            self.directory = self.out

    def exact_path(self, index: int) -> Path:
        """The path of image `index` when `out` is an explicit ``.png`` file."""
        if self.exact is None:
            raise ValueError("no explicit .png output path was given")
        if self.n_images == 1:
            if index != 0:
                raise ValueError(f"image {index} of a single-image run has no path")
            return self.exact
        return self.exact.with_name(f"{self.exact.stem}-{index}{self.exact.suffix}")

    def check_batch(self) -> None:
        """Before anything is drawn: every file this writer will write can be written (no name is taken, the
        folder is not a file), so a batch is written whole or not at all."""
        if self.exact is not None:
            check_free([self.exact_path(k) for k in range(self.n_images)])
            return
        folder = self.target_dir()
        for p in (folder, *folder.parents):
            if os.path.lexists(p):
                if not p.is_dir():
                    raise ValueError(f"{p} exists and is not a folder; give another --out")
                break

    def target_dir(self) -> Path:
        """The folder numbered images go to now (today's folder under `root` by default)."""
        if self.directory is not None:
            return self.directory
        return default_output_dir(self.root, datetime.date.today())

    def write(
        self, image: Image.Image, seed: int, pnginfo: PngInfo | None = None, *, index: int | None = None
    ) -> Path:
        """Save `image` at the next path and return that path.

        `index` (default: the number of images this writer has written) only matters for
        an explicit ``.png`` path with several images.  For numbered folders, a number
        taken by another process between choosing and publishing is skipped and the next
        one tried, up to 16 times.
        """
        _check_seed(seed)
        with self._lock:
            k = self._written if index is None else index
            self._written += 1
        if self.exact is not None:
            path = self.exact_path(k)
            try:
                return save_png_atomic(image, path, pnginfo)
            except FileExistsError:
                raise FileExistsError(
                    errno.EEXIST,
                    f"{path} already exists; choose another output name (t2i never overwrites images)",
                    str(path),
                ) from None

        directory = self.target_dir()
        number = -1
        for _ in range(PUBLISH_ATTEMPTS):
            number = max(number + 1, _highest_number(directory) + 1)
            path = directory / _numbered_name(number, seed)
            try:
                return save_png_atomic(image, path, pnginfo)
            except FileExistsError:
                continue
        raise FileExistsError(
            errno.EEXIST,
            f"could not find a free file name in {directory} after {PUBLISH_ATTEMPTS} attempts",
            str(directory),
        )
