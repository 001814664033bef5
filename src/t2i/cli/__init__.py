"""The `t2i` command line, one module per command group: `generate` (generate, presample, compose, info),
`models`, `world`, `evaluate` (eval, compare), `train` (one sub-command per recipe) and `convert`.
`main` builds the parser and turns every error into one line."""

from t2i.cli.main import main

__all__ = ["main"]
