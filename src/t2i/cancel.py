"""Cancelling a running call: a thread-safe token that every stage checks once per step.

The caller (the CLI's SIGINT handler, the server's DELETE, a Ray actor) calls `token.cancel()` from any
thread; the stage running the call sees it at its next step boundary and raises `Cancelled`, so a call stops
within one step.  A cancelled call returns nothing and writes nothing: images are saved only after a whole
call has finished.
"""

from __future__ import annotations

import threading


class Cancelled(RuntimeError):
    """The call was cancelled; nothing was written."""


class CancelToken:
    """Set once by `cancel()` (from any thread); `check(where)` raises `Cancelled` once it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "") -> None:
        """Ask the call to stop at its next step.  Idempotent; the first reason is kept."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, where: str = "") -> None:
        """Raise `Cancelled` (naming `where`, e.g. "step 3 of 25") when the token is set."""
        if self._event.is_set():
            detail = f" at {where}" if where else ""
            raise Cancelled(f"cancelled{detail}{': ' + self._reason if self._reason else ''}")


def check(token: CancelToken | None, where: str = "") -> None:
    """`token.check(where)`, for stages whose token is optional."""
    if token is not None:
        token.check(where)
