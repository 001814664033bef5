"""The README is the user manual: within its limits, its links resolve, its commands parse, its Python example
runs as written, and it names every command users have."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from t2i.cli.main import build_parser
from t2i.cli.pipeline_flags import expand_optional_values

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[list[str]]:
    """Every `t2i ...` command of the README's bash blocks, split as the shell splits it (comments dropped;
    `a && b` gives b; a redirection or pipe ends the command)."""
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                ends = [k for k, w in enumerate(words) if w in (">", ">>", "|", "<")]
                words = words[: ends[0]] if ends else words
                if words[:1] == ["t2i"]:
                    out.append(words[1:])
    return out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def test_the_readme_is_within_its_limits():
    assert len(README.splitlines()) <= 350
    assert len(README.encode("utf-8")) <= 30 * 1024


def test_every_relative_link_resolves():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 10
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_the_readme_cites_nothing_a_reader_cannot_have():
    assert not re.search(r"\bruns/\S+/|spec-\w+\.md|session \d", README)


def test_every_command_in_the_readme_parses():
    parser = build_parser()
    found = commands()
    assert len(found) >= 20
    for argv in found:
        try:
            parser.parse_args(expand_optional_values(argv))  # as `t2i.cli.main` parses
        except SystemExit as e:  # argparse's way to refuse
            pytest.fail(f"t2i {' '.join(argv)} does not parse ({e})")


def test_the_readme_names_every_command_and_recipe():
    parser = build_parser()
    top = subcommands(parser)
    named = [f"t2i {name}" for name in top]
    named += [f"t2i world {name}" for name in subcommands(top["world"])]
    named += [f"t2i train {name}" for name in subcommands(top["train"])]
    recipes = [name for name in subcommands(top["train"])]
    missing = [n for n in named if n not in README and not (n.startswith("t2i train ") and
                                                             f"`{n.rsplit(' ', 1)[1]}`" in README)]
    assert recipes and missing == []


def test_every_headline_figure_has_its_command():
    table = README.split("## Headline figures", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]
    assert len(rows) >= 8
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4 and re.search(r"`(t2i|python) [^`]+`", cells[2]), row


def test_the_python_example_runs_as_written(tmp_path):
    code = "\n".join(blocks("python"))
    assert "t2i.load(" in code
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "circle-above-square.png").is_file()
    assert len(list((tmp_path / "outputs").glob("*.png"))) == 1


def test_the_readme_names_every_registered_model():
    from t2i.backends import default_registry

    names = [spec.name for spec in default_registry().specs()]
    assert len(names) > 20
    missing = [n for n in names if f"`{n}`" not in README and f"`{n.rsplit('-', 1)[0]}`" not in README]
    assert missing == []
