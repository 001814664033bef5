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
from pathlib import Path

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


def save_png_atomic(image: Image.Image, path: Path, pnginfo: PngInfo | None = None) -> Path:
    """Save `image` as a PNG at `path` atomically, never overwriting; return `path`.

    Parent directories are created.  The PNG is written to a temporary file in the same
    directory (named ``.<name>.<random>.tmp``), flushed and fsynced, then published with
    ``os.link``, which fails if `path` exists, and the temporary name is removed.  Raises
    FileExistsError if `path` already exists and OSError if the filesystem cannot make
    hard links (there is no non-atomic fallback).  On any exception, KeyboardInterrupt
    included, the temporary file is removed, so a failed or cancelled save leaves no
    partial file.
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, f"{path} already exists; not overwriting it", str(path))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _file_mode())  # mkstemp makes 0600 files
            image.save(f, format="PNG", pnginfo=pnginfo)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            raise FileExistsError(
                errno.EEXIST, f"{path} already exists; not overwriting it", str(path)
            ) from None
        except OSError as e:
            if e.errno in _NO_LINK_ERRNOS:
                raise OSError(
                    e.errno,
                    f"cannot publish {path} atomically: this filesystem does not support hard links "
                    f"({e.strerror}); choose an output folder on another filesystem",
                    str(path),
                ) from e
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    _fsync_dir(parent)
    return path


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

    def __init__(self, root: Path | None = None, out: Path | None = None, *, n_images: int = 1) -> None:
        """Set up the destination; see the class docstring.  Raises ValueError for an
        `out` that names a non-PNG image file or an existing non-directory file."""
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.out = Path(out) if out is not None else None
        self.n_images = n_images
        self.exact: Path | None = None
        self.directory: Path | None = None
        self._written = 0
        self._lock = threading.Lock()
        if self.out is None:
            return
        if self.out.suffix.lower() == ".png" and not self.out.is_dir():
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
