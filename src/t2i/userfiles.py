"""Reading files a user names: only regular files, opened without blocking, size-capped.

A FIFO, a device or a folder given where a file is expected would block forever or read without end;
they are refused before anything is read.  A symbolic link is followed (users link their data), but what
it points at must be a regular file too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

MAX_TEXT_BYTES = 64 * 1024 * 1024


class UserFileError(OSError):
    """A file named by a user that is not a readable regular file (or is too large)."""


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n:,} bytes"


def open_user_file(path: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """Open `path` for binary reading; refuse anything but a regular file (checked on the opened descriptor,
    so nothing can be swapped in between) and files larger than `max_bytes`."""
    path = Path(path)
    # O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise UserFileError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise UserFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UserFileError(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UserFileError(f"{path}: not a regular file (a FIFO, socket or device is never read)")
        if max_bytes is not None and st.st_size > max_bytes:
            raise UserFileError(f"{path}: {st.st_size:,} bytes; files over {_size(max_bytes)} are refused")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_user_bytes(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`."""
    with open_user_file(path, max_bytes) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise UserFileError(f"{path}: files over {_size(max_bytes)} are refused")
    return data


def read_user_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` (a UTF-8 byte-order mark is dropped)."""
    data = read_user_bytes(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserFileError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
