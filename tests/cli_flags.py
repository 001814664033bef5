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


def flag_keys(lines: list[str]) -> set[str]:
    """Each line's `COMMAND --flag` (COMMAND the top-level command only, so that a flag moved into a
    sub-command of its command keeps its key), one per name and one more per choice (`COMMAND --flag choice`).
    Positionals are left out."""
    out = set()
    for line in lines:
        head, _, choices = line.partition(" {")
        words = head.split(" ")
        top = words[0] if len(words) > 1 else ""
        for name in words[-1].split(","):
            if name.startswith("<"):
                continue
            out.add(f"{top} {name}".strip())
            for choice in choices.rstrip("}").split(",") if choices else ():
                out.add(f"{top} {name} {choice}".strip())
    return out
