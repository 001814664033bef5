"""`t2i train` for the tests: the t2i command (`main`: a bad input is one `t2i: error:` line and exit 2), the
train command's parser alone (`parser`, built by `t2i.cli.train.register`), and argparse's refusals."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from t2i.cli import main
from t2i.cli.train import register

__all__ = ["main", "parser", "usage_error"]


def parser() -> argparse.ArgumentParser:
    """A parser holding the t2i command's `train` alone."""
    p = argparse.ArgumentParser(prog="t2i")
    register(p.add_subparsers(dest="command", required=True))
    return p


def usage_error(argv: Sequence[str]) -> None:
    """Assert that argparse refuses `t2i ARGV` (a flag the recipe does not take, a value of the wrong form)."""
    import pytest

    with pytest.raises(SystemExit) as info:
        parser().parse_args(list(argv))
    assert info.value.code == 2
