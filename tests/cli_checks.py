"""Assertions shared by the CLI tests."""

from __future__ import annotations


def one_line_error(code: int, out: str, err: str, *needles: str) -> str:
    """Assert the outcome is exit 2 with exactly one `t2i: error:` line (no traceback) holding every needle;
    return that line."""
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("t2i: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
