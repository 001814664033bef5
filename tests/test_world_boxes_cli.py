"""`t2i world boxes`: a contact sheet of images with the detector's boxes, in the order given."""

from __future__ import annotations

from PIL import Image

from t2i.cli import main
from t2i.world.sheet import TILE


def _images(folder, n: int) -> list[str]:
    folder.mkdir()
    paths = []
    for k in range(n):
        im = Image.new("RGB", (64, 64), (255, 255, 255))
        im.paste((220, 30, 30), (16 + k, 16, 40 + k, 40))  # a red square
        im.save(folder / f"{k}.png")
        paths.append(str(folder / f"{k}.png"))
    return paths


def test_columns_set_the_sheet_layout(tmp_path, capsys) -> None:
    files = _images(tmp_path / "in", 6)
    assert main(["world", "boxes", *files, "--columns", "3", "--out", str(tmp_path / "three.png")]) == 0
    assert main(["world", "boxes", *files, "--out", str(tmp_path / "square.png")]) == 0
    assert "6 images" in capsys.readouterr().out
    three, square = Image.open(tmp_path / "three.png"), Image.open(tmp_path / "square.png")
    assert three.width == 3 * (TILE + 4) + 4  # three tiles a row, two rows
    assert square.width == 3 * (TILE + 4) + 4 and three.height == square.height  # ceil(sqrt 6) = 3 too
    assert main(["world", "boxes", *files, "--columns", "6", "--out", str(tmp_path / "row.png")]) == 0
    row = Image.open(tmp_path / "row.png")
    assert row.width == 6 * (TILE + 4) + 4 and row.height < three.height  # one row
    assert main(["world", "boxes", *files, "--columns", "0", "--out", str(tmp_path / "bad.png")]) == 2
    assert "--columns" in capsys.readouterr().err
