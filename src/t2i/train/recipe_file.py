"""RECIPE.json: what made a trained folder (settings, figures) and where it came from (command, code
version, library versions), so that the weights we ship can be made again."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def _git_commit(folder: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether the checkout has uncommitted changes) of the git checkout holding `folder`,
    or (None, None) when it is not in one or git is missing."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, dirty


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(command: str | None = None) -> dict[str, Any]:
    """Where a training run came from: its command line (this process's when not given), the t2i commit
    (when t2i runs from a git checkout), and the versions that matter for reproducing it."""
    if command is None:
        program = Path(sys.argv[0]).name if sys.argv else ""
        command = " ".join(["t2i" if program == "t2i" else program, *sys.argv[1:]]).strip()
    commit, dirty = _git_commit(Path(__file__).resolve().parent)
    return {"command": command, "git_commit": commit, "git_dirty": dirty,
            "versions": {name: _version(name) for name in ("t2i", "torch", "diffusers", "transformers")}
            | {"python": platform.python_version()},
            "written": datetime.now(UTC).isoformat(timespec="seconds")}


def write_recipe(out: Path, model: str, config: dict[str, Any], figures: dict[str, Any] | None = None,
                 command: str | None = None, **extra: Any) -> Path:
    """Write out/RECIPE.json: model name, settings, figures, any `extra` fields, and the provenance."""
    record = {"model": model, "config": config, "seed": config.get("seed"), "figures": figures or {}, **extra,
              "provenance": provenance(command)}
    path = Path(out) / "RECIPE.json"
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def strip_load_paths(folder: Path) -> list[Path]:
    """Remove `_name_or_path` (where the library loaded a module from: a path of the machine that trained
    it) from every JSON config under an exported folder; returns the files changed."""
    changed = []
    for path in sorted(folder.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict) and "_name_or_path" in data:
            del data["_name_or_path"]
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            changed.append(path)
    return changed
