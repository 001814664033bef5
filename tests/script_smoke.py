"""Run a bench/ or experiments/ script's `--smoke` path end to end, in this process.

A script runs as `python SCRIPT --smoke` would run it (`__name__ == "__main__"`, its own argv, a temporary
working folder, offline), but in the test process, so that torch and diffusers are imported once for all
scripts instead of once each (that import is most of a smoke run).  Thread counts and the environment are
restored afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SmokeRun:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_smoke(script: Path, folder: Path) -> SmokeRun:
    """`python script --smoke` with `folder` as the working folder; SystemExit is its exit code."""
    import torch

    threads, environ, cwd, argv = torch.get_num_threads(), dict(os.environ), os.getcwd(), sys.argv
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"HF_HUB_OFFLINE": "1", "T2I_HOME": str(folder / "t2i-home")})
    os.chdir(folder)
    sys.argv = [str(script), "--smoke"]
    code = 0
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int | None):
            err.write(str(e.code))
    finally:
        seconds = time.perf_counter() - t0
        sys.argv = argv
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
    return SmokeRun(code, out.getvalue(), err.getvalue(), seconds)


def check_promises(script: Path, run: SmokeRun, promises: dict[str, list[str]]) -> None:
    """The run succeeded and every promised pattern matches a line of its output."""
    assert script.stem in promises, f"{script.name}: say in PROMISES what its --smoke output must hold"
    assert run.code == 0, f"{script.name} --smoke failed after {run.seconds:.1f} s:\n{run.stderr[-3000:]}"
    lines = run.stdout.splitlines()
    for pattern in promises[script.stem]:
        assert any(re.search(pattern, line) for line in lines), f"{script.name}: no line matches {pattern!r}:\n" \
                                                                f"{run.stdout}"


def check_self_contained(script: Path, folder: str) -> None:
    """The script imports only the installed package and libraries, and its usage lines name its own path,
    with the --smoke command among them."""
    text = script.read_text(encoding="utf-8")
    assert "sys.path" not in text and not re.search(r"^\s*(from|import) tests\b", text, re.M)
    usage = re.findall(r"python (\S+\.py)", text)
    assert usage and all(u == f"{folder}/{script.name}" for u in usage), usage
    assert f"python {folder}/{script.name} --smoke" in text, "the docstring shows the --smoke command"
