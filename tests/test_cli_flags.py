"""The CLI's flags are a reviewed list: any change shows up here, and every removed flag is documented and
refused with its replacement."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2i.cli.main import REMOVED_CHOICES, REMOVED_FLAGS, build_parser, main
from tests.cli_flags import flag_keys, flag_lines

DATA = Path(__file__).parent / "data"
CHANGES = Path(__file__).parent.parent / "docs" / "changes.md"


def _read(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def test_the_flag_list_is_the_committed_one():
    # after a deliberate change: python -c "from tests.cli_flags import ...; ..." rewrites tests/data/cli_flags.txt
    assert flag_lines(build_parser()) == _read("cli_flags.txt")


def _gone() -> set[str]:
    """`COMMAND --flag` and `COMMAND --flag choice` keys that were in the list before and are not now."""
    return flag_keys(_read("cli_flags_before.txt")) - flag_keys(_read("cli_flags.txt"))


def test_every_flag_gone_since_the_architecture_change_is_named_in_the_changes_page():
    text = CHANGES.read_text(encoding="utf-8")
    # a key is `--flag` or `--flag choice`; the choices of a flag removed whole go with their flag
    named = {key.split(" ", 1)[1] for key in _gone()}
    named = {n for n in named if n.split(" ")[0] not in named or " " not in n}
    missing = sorted(n for n in named if f"`{n}`" not in text)
    assert _gone() and missing == []


def test_a_gone_flag_is_refused_with_its_replacement():
    for key in _gone():
        flag, _, choice = key.split(" ", 1)[1].partition(" ")
        assert flag in REMOVED_FLAGS or (flag, choice) in REMOVED_CHOICES, key


@pytest.mark.parametrize("argv", [["train", "shapes-xl", "--work", "w", "--out", "o", "--ground-token", "1"],
                                  ["train", "distill", "--work", "w", "--out", "o", "--student-init=random"],
                                  ["generate", "x", "--region-text", "local-pooled"],
                                  ["eval", "--out", "o", "--region-text=local-outside"]])
def test_a_removed_flag_is_refused_with_what_to_use_instead(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "was removed" in err and "docs/changes.md" in err
    flag = next(f for f in (a.partition("=")[0] for a in argv) if f in REMOVED_FLAGS or f == "--region-text")
    reason = REMOVED_FLAGS.get(flag) or next(v for (f, _), v in REMOVED_CHOICES.items() if f == flag)
    assert reason in err


def test_a_flag_renamed_on_one_recipe_names_its_new_name(capsys):
    argv = ["train", "paella-tiny", "--work", "w", "--out", "o", "--vae-steps", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train paella-tiny --vae-steps was renamed: use --vq-steps" in err
    shapes_xl = ["train", "shapes-xl", "--work", "w", "--out", "o", "--vae-steps", "5"]
    assert build_parser().parse_args(shapes_xl).vae_steps == 5  # still shapes-xl's flag
