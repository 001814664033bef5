"""Draw shapes-world scenes at any resolution (anti-aliased by 4x supersampling).

Every shape's canonical outline fills the square [-1, 1]^2 exactly, so the drawn shape's bounding
box is the object's square; the detector draws the same outlines as templates.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from t2i.grid import GRID
from t2i.world.scene import Scene
from t2i.world.vocab import BACKGROUNDS, COLORS

SUPERSAMPLE = 4


def _star_outline() -> list[tuple[float, float]]:
    # 5-point star, inner radius 0.5, point up; then stretched to fill [-1, 1]^2.
    pts = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.5
        a = math.radians(-90 + 36 * k)
        pts.append((r * math.cos(a), r * math.sin(a)))
    xs, ys = zip(*pts, strict=True)
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [(2 * (x - x0) / (x1 - x0) - 1, 2 * (y - y0) / (y1 - y0) - 1) for x, y in pts]


# shape -> outline in [-1, 1]^2 (y down); None means an ellipse filling the square
OUTLINES: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
    "triangle": [(0, -1), (1, 1), (-1, 1)],
    "star": _star_outline(),
}


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Draw `shape` filling `box` = (x0, y0, x1, y1) in pixel coordinates (edges, not centres)."""
    x0, y0, x1, y1 = box
    outline = OUTLINES[shape]
    if outline is None:
        # PIL's ellipse includes its end pixel: shrink by one so the ellipse spans [x0, x1).
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
        return
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    # Polygon vertices sit on pixel corners; PIL fills pixels whose centres are inside.
    draw.polygon([(cx + u * hw - 0.5, cy + v * hh - 0.5) for u, v in outline], fill=fill)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if w < 8 or h < 8:
        raise ValueError(f"image size must be at least 8x8, got {w}x{h}")
    return w, h


def render_scene(scene: Scene, size: int | tuple[int, int] = 64) -> Image.Image:
    """Render `scene` as an RGB image of `size` (int or (width, height)); the grid stretches to fit."""
    w, h = _size(size)
    s = SUPERSAMPLE
    img = Image.new("RGB", (w * s, h * s), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    sx, sy = w * s / GRID, h * s / GRID
    for o in sorted(scene.objects, key=lambda o: -o.distance_to_viewer):  # far first
        x0, y0, x1, y1 = o.shape_box()
        _draw(draw, o.shape, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), COLORS[o.color])
    return img.reduce(s)


def shape_template(shape: str, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """Coverage in [0, 1] of `shape` filling pixel box (x0, y0, x1, y1) on an image of `size` (w, h)."""
    w, h = size
    s = SUPERSAMPLE
    img = Image.new("L", (w * s, h * s), 0)
    x0, y0, x1, y1 = box
    _draw(ImageDraw.Draw(img), shape, (x0 * s, y0 * s, x1 * s, y1 * s), 255)
    return np.asarray(img.reduce(s), dtype=np.float32) / 255.0


def scene_boxes_px(scene: Scene, size: int | tuple[int, int] = 64) -> list[tuple[float, float, float, float]]:
    """Each object's drawn box in pixels (x0, y0, x1, y1) for an image of `size`."""
    w, h = _size(size)
    return [(x0 * w / GRID, y0 * h / GRID, x1 * w / GRID, y1 * h / GRID)
            for x0, y0, x1, y1 in (o.shape_box() for o in scene.objects)]
