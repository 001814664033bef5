"""The `t2i` command: its parser, built from one module per command group, and the one place where errors
become one line on stderr (`--debug` shows the traceback)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from t2i.cli.common import FORMATTER, printable
from t2i.llm.base import LLMError

if TYPE_CHECKING:
    from t2i.registry import ModelRegistry

EXAMPLES = """examples:
  t2i generate "a red circle above a blue square"
  t2i models
  t2i info outputs/2026-11-23/00000-42.png
  t2i world sample --n 16 --seed 0 --out samples"""

# Flags and choices that existed and were removed (docs/changes.md): the error names what to use instead.
REMOVED_FLAGS = {
    "--ground-token": "TokenCompose grounding did not help the shapes models; no replacement",
    "--ground-pixel": "TokenCompose grounding did not help the shapes models; no replacement",
    "--ground-max-t": "TokenCompose grounding did not help the shapes models; no replacement",
    "--decoder-adversarial": "the PatchGAN term did not help the VQGAN decoder; no replacement",
    "--student-init": "a distilled student always starts from the teacher's kept blocks (KOALA's recipe)",
}
# Flags renamed on one sub-command only (the old name stays valid elsewhere): (command words, flag) -> new name.
RENAMED_FLAGS = {
    (("train", "paella-tiny"), "--vae-steps"): "--vq-steps (paella-tiny trains a VQGAN, not a VAE)",
}


def _removed_choices() -> dict[tuple[str, str], str]:
    """(flag, value) -> what to use instead, for every removed backend option value that a pipeline flag sets
    (one table: `t2i.backends.options.REMOVED_OPTIONS`, which also refuses them in replayed requests)."""
    from t2i.backends.options import REMOVED_OPTIONS
    from t2i.pipeline_options import PIPELINE_OPTIONS

    flags = {o.target[1]: f"--{o.name}" for o in PIPELINE_OPTIONS if o.target[0] == "model_options"}
    return {(flags[r.option], r.value): r.instead for r in REMOVED_OPTIONS
            if r.value is not None and r.option in flags}


REMOVED_CHOICES = _removed_choices()


def build_parser() -> argparse.ArgumentParser:
    """The whole `t2i` parser; each command's module adds its own parser and sets its `handler`."""
    from t2i.cli import convert, evaluate, generate, models, train, world

    p = argparse.ArgumentParser(prog="t2i", description="Text to image: presample, compose, generate, evaluate.",
                                epilog=EXAMPLES, formatter_class=FORMATTER)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (generate, models, world, evaluate, train, convert):
        module.register(commands)
    return p


def removed_flag(argv: Sequence[str]) -> str | None:
    """The error for the first removed or renamed flag or choice in `argv`, else None."""
    commands = tuple(a for a in argv if not a.startswith("-"))  # the command words come first
    for k, arg in enumerate(argv):
        flag, _, value = arg.partition("=")
        if flag in REMOVED_FLAGS:
            return f"{flag} was removed: {REMOVED_FLAGS[flag]} (see docs/changes.md)"
        for (scope, old), new in RENAMED_FLAGS.items():
            if flag == old and commands[: len(scope)] == scope:
                return f"{' '.join(scope)} {flag} was renamed: use {new} (see docs/changes.md)"
        if not value and k + 1 < len(argv):
            value = argv[k + 1]
        if (flag, value) in REMOVED_CHOICES:
            return f"{flag} {value} was removed: {REMOVED_CHOICES[flag, value]} (see docs/changes.md)"
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every `finally` runs (temporary files are removed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


# Arguments naming something a command writes: never a symbolic link (t2i does not write through links).
WRITE_DESTS = ("out", "work", "results", "preview", "dst")
# Commands whose outputs are folders (the rest write files).
FOLDER_OUTPUTS = {("world", "sample"): ("out",), ("world", "dataset"): ("out",), ("world", "render-suite"): ("out",),
                  ("eval",): ("out",), ("train",): ("work", "out")}


def check_args(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """The edge's rules for every command: UTF-8 text only, no control characters, no links as outputs."""
    from t2i.text import text_problem

    for k, arg in enumerate(argv, start=1):
        problem = text_problem(arg)
        if problem:
            raise ValueError(f"command-line argument {k} ({printable(arg)[:60]!r}) {problem}")
    for dest in WRITE_DESTS:
        value = getattr(args, dest, None)
        if value is not None and Path(value).is_symlink():
            raise ValueError(f"{value} is a symbolic link; t2i does not write through links (name the real path)")
    command = (args.command, *((args.world_command,) if args.command == "world" else ()))
    for dest in FOLDER_OUTPUTS.get(command, ()):
        value = getattr(args, dest, None)
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            raise ValueError(f"{value} exists and is not a folder; t2i never overwrites (name a new folder)")


def main(argv: Sequence[str] | None = None, registry: ModelRegistry | None = None) -> int:
    """Entry point of the `t2i` command; returns the exit code.  `registry` replaces the default one."""
    import signal
    import threading

    argv = list(sys.argv[1:] if argv is None else argv)
    removed = removed_flag(argv)
    if removed:
        print(f"t2i: error: {removed}", file=sys.stderr)
        return 2
    from t2i.cli.pipeline_flags import expand_optional_values

    args = build_parser().parse_args(expand_optional_values(argv))
    args.registry = registry
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        check_args(args, argv)
        return args.handler(args)
    except Terminated:
        print("t2i: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("t2i: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # output piped into a command that stopped reading (e.g. head)
    except (ValueError, OSError, LLMError) as e:
        if args.debug:
            raise
        print(f"t2i: error: {printable(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not a bad input: still one line, and how to see more
        if args.debug:
            raise
        print(f"t2i: internal error: {type(e).__name__}: {printable(e)} (t2i --debug ... shows the traceback; "
              "please report it)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
