"""The CLI's full flag list, one line per flag: `COMMAND... --flag[,alias] [{choices}]`."""

from __future__ import annotations

import argparse


def flag_lines(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[str]:
    """Every option and positional of `parser` and its sub-commands, sorted, with each flag's choices."""
    lines = []
    for action in parser._actions:  # argparse keeps no public list of its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += flag_lines(sub, (*path, name))
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        names = ",".join(action.option_strings) or f"<{action.dest}>"
        choices = f" {{{','.join(map(str, action.choices))}}}" if action.choices else ""
        lines.append(" ".join((*path, names)) + choices)
    return sorted(lines)


def flag_names(lines: list[str]) -> set[str]:
    """The `COMMAND... --flag` part of each line, one entry per flag name and per choice."""
    out = set()
    for line in lines:
        head, _, choices = line.partition(" {")
        words = head.split(" ")
        for name in words[-1].split(","):
            out.add(" ".join((*words[:-1], name)))
            for choice in choices.rstrip("}").split(",") if choices else ():
                out.add(" ".join((*words[:-1], name, choice)))
    return out
