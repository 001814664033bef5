"""docs/adding-a-backend.md stays true: its example backend module and its contract test, as printed there, run
the contract suite."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-backend.md"


def _doc_example() -> types.ModuleType:
    """The page's first Python block (the backend module) followed by its last (the contract test), as one
    module; the test's relative import of the suite made absolute."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    source = blocks[0] + "\n\n" + blocks[-1].replace("from .suite import", "from tests.contract.suite import")
    module = types.ModuleType("adding_a_backend_example")
    module.__file__ = str(DOC)
    sys.modules[module.__name__] = module
    exec(compile(source, str(DOC), "exec"), module.__dict__)  # noqa: S102 - the repository's own page
    return module


EXAMPLE = _doc_example()
TestGradientContract = EXAMPLE.TestGradientContract


def test_the_example_is_a_complete_backend_module():
    assert {"GradientBackend", "SCHEMA", "load_gradient"} <= set(vars(EXAMPLE))
    assert EXAMPLE.GradientBackend.schema is EXAMPLE.SCHEMA
