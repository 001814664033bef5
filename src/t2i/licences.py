"""Show a model's licence the first time it is used (recorded in t2i's state folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol


class LicenceTerms(Protocol):
    """What a notice shows of a licence (t2i.registry.Licence has these fields)."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def summary(self) -> str: ...


class Licensed(Protocol):
    """A model as the notice names it: its name and its licence (t2i.registry.ModelSpec has both)."""

    @property
    def name(self) -> str: ...

    @property
    def licence(self) -> LicenceTerms: ...


def state_dir() -> Path:
    """t2i's per-user state folder: $T2I_HOME, else $XDG_CACHE_HOME/t2i, else ~/.cache/t2i."""
    if os.environ.get("T2I_HOME"):
        return Path(os.environ["T2I_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "t2i"


def licence_notice_once(spec: Licensed, state: Path | None = None) -> str | None:
    """The licence notice for `spec` if it has not been shown before (and record it), else None."""
    path = (state or state_dir()) / "licences-seen.json"
    try:
        seen = set(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        seen = set()
    key = f"{spec.name}|{spec.licence.name}"
    if key in seen:
        return None
    seen.add(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(seen)), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home must not stop generation; the notice is shown again next time
    url = f" ({spec.licence.url})" if spec.licence.url else ""
    return f"{spec.name} is licensed under {spec.licence.name}{url}. {spec.licence.summary}"
