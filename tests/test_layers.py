"""Layers hold by construction: no module imports a higher layer, and one layer's packages form no cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

import t2i
from tests.layers import LAYERS, check_layers

SRC = Path(t2i.__file__).resolve().parent.parent


def test_every_module_has_a_layer_and_imports_only_downward():
    assert check_layers(SRC) == []


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(SRC / "t2i", tmp_path / "t2i", ignore=shutil.ignore_patterns("weights", "data", "__pycache__"))
    return tmp_path


def _new_problems(root: Path) -> list[str]:
    """What the planted change adds (so that each planted test says one thing even on a broken tree)."""
    before = set(check_layers(SRC))
    return [p for p in check_layers(root) if p not in before]


def test_a_planted_upward_import_fails(tmp_path):
    root = _copy(tmp_path)
    types = root / "t2i" / "types.py"
    types.write_text(types.read_text(encoding="utf-8") + "\n\ndef _late():\n    import t2i.cli.main  # noqa\n",
                     encoding="utf-8")
    problems = _new_problems(root)
    assert len(problems) == 1 and problems[0].startswith("t2i.types:") and "imports t2i.cli.main" in problems[0]
    assert "(types)" in problems[0] and "(product, a higher layer)" in problems[0]


def test_a_planted_relative_upward_import_fails(tmp_path):
    root = _copy(tmp_path)
    vocab = root / "t2i" / "world" / "vocab.py"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "\nfrom ..generate import generate  # noqa\n",
                     encoding="utf-8")
    assert [p for p in _new_problems(root) if "t2i.world.vocab" in p and "t2i.generate" in p]


def test_a_module_without_a_layer_fails(tmp_path):
    root = _copy(tmp_path)
    (root / "t2i" / "newthing.py").write_text('"""A module nobody placed."""\n', encoding="utf-8")
    assert _new_problems(root) == ["t2i.newthing: no layer (add it to tests/layers.py LAYERS)"]


def test_a_cycle_between_packages_of_one_layer_fails(tmp_path):
    root = _copy(tmp_path)
    # world and render share a layer; render already may not import world, and world importing render while
    # render imports compose and compose imports world closes a loop
    (root / "t2i" / "world" / "loop.py").write_text("import t2i.render.bags  # noqa\n", encoding="utf-8")
    (root / "t2i" / "render" / "loop.py").write_text("import t2i.world.vocab  # noqa\n", encoding="utf-8")
    problems = _new_problems(root)
    assert any(p.startswith("import cycle") and "t2i.world" in p and "t2i.render" in p for p in problems)


def test_the_layers_follow_the_design_order():
    assert [name for name, _ in LAYERS] == ["types", "helpers", "engine", "models", "pipeline", "uses", "product",
                                            "api"]
