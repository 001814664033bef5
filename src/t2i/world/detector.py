"""Classical shapes-world detector: colour segmentation, connected components, template matching.

1. Median-filter the image (3x3 per channel) to remove pixel noise.
2. Background = median colour of the border pixels (objects never touch the border).
3. Foreground = pixels farther than FG_THRESHOLD (RGB distance in [0, 1] units) from the background;
   8-connected components smaller than MIN_AREA_FRAC of the image are dropped.
4. Each component's colour is the median of its pixels farthest from the background, named by the
   nearest of the ten colour words; components touching the border are dropped.
5. The component is re-cut at the half level between background and its colour (so blur does not
   grow or merge it); its shape is the template (circle, square, ...) with the highest soft IoU, each
   template's box fitted to the component's first and second moments, sharp and blurred.
An object counts as found by `match_objects` when shape and colour match and the centres are within
CENTER_TOLERANCE (a fraction of the image's width/height) on each axis.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from t2i.world.draw import shape_template
from t2i.world.vocab import COLORS, SHAPES

FG_THRESHOLD = 0.12
MIN_AREA_FRAC = 0.0025  # 10 px at 64x64
MIN_SHAPE_IOU = 0.7  # components matching no template this well are not objects (true objects score >= 0.88)
CENTER_TOLERANCE = 0.06  # of width/height, per axis
BLUR_SIGMAS = (0.0, 0.7, 1.0, 1.5)  # px; template blurs tried when classifying
PAD = 4  # px around a component when cutting and matching it

_COLOR_NAMES = list(COLORS)
_COLOR_TABLE = np.array([COLORS[c] for c in _COLOR_NAMES], dtype=np.float32) / 255.0  # (10, 3)


class ImageReadError(ValueError):
    """An image file that cannot be read as an RGB picture."""


@dataclass(frozen=True)
class Detection:
    """One detected object; box is (x0, y0, x1, y1) in pixels, right/bottom exclusive."""

    shape: str
    color: str
    box: tuple[float, float, float, float]
    area: int  # pixels
    score: float  # soft IoU with the best template, in [0, 1]

    def center(self, size: tuple[int, int]) -> tuple[float, float]:
        """Centre as fractions of the image (w, h)."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2 / size[0], (y0 + y1) / 2 / size[1])

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "box": list(self.box), "area": self.area,
                "score": round(self.score, 4)}


MAX_IMAGE_BYTES = 64 * 1024 * 1024  # an image file to score; larger ones are refused unread

def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as float32 (H, W, 3) in [0, 1]; alpha is composited over white."""
    from t2i.userfiles import UserFileError, open_user_file

    try:
        with open_user_file(path, MAX_IMAGE_BYTES) as f, Image.open(f) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            rgb = im.convert("RGB")
    except UserFileError as e:
        raise ImageReadError(str(e)) from e
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from e
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.astype(np.float32)


def nearest_color(rgb: np.ndarray) -> str:
    """The colour word whose HTML value is nearest (Euclidean RGB) to `rgb` in [0, 1]."""
    return _COLOR_NAMES[int(np.argmin(((_COLOR_TABLE - rgb) ** 2).sum(axis=1)))]


def _core_color(pixels: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Median colour of the quarter of `pixels` (N, 3) farthest from the background (edges are blends)."""
    dist = ((pixels - bg) ** 2).sum(axis=1)
    keep = dist >= np.quantile(dist, 0.75)
    return np.median(pixels[keep], axis=0)


@functools.cache
def _template_moments(shape: str) -> tuple[float, float, float, float]:
    """(centroid x, centroid y, std x, std y) of `shape` drawn in a unit box, relative to the box centre."""
    n = 256
    t = shape_template(shape, (0, 0, n, n), (n, n)).astype(np.float64)
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    m = t.sum()
    cx, cy = (t * xx).sum() / m, (t * yy).sum() / m
    sx = np.sqrt((t * (xx - cx) ** 2).sum() / m)
    sy = np.sqrt((t * (yy - cy) ** 2).sum() / m)
    return (cx / n - 0.5, cy / n - 0.5, sx / n, sy / n)


def _classify(coverage: np.ndarray) -> tuple[str, float, tuple[float, float, float, float]]:
    """Best-matching shape, its soft IoU and its fitted box (x0, y0, x1, y1) in coverage's pixels.

    coverage: (H, W) in [0, 1], this object only.  For each shape and each blur in BLUR_SIGMAS the
    template's box is fitted by moments (a Gaussian blur adds sigma^2 to the variance), the template is
    drawn there, blurred, and compared by soft IoU; generated and resized images are rarely sharp.
    """
    h, w = coverage.shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    m = float(coverage.sum())
    cx, cy = float((coverage * xx).sum() / m), float((coverage * yy).sum() / m)
    vx = float((coverage * (xx - cx) ** 2).sum() / m)
    vy = float((coverage * (yy - cy) ** 2).sum() / m)
    best: tuple[str, float, tuple[float, float, float, float]] = (SHAPES[0], -1.0, (0.0, 0.0, 0.0, 0.0))
    for shape in SHAPES:
        ox, oy, sx, sy = _template_moments(shape)
        for sigma in BLUR_SIGMAS:
            bw = np.sqrt(max(vx - sigma**2, 0.25)) / sx
            bh = np.sqrt(max(vy - sigma**2, 0.25)) / sy
            bx, by = cx - ox * bw, cy - oy * bh  # box centre
            box = (bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2)
            t = shape_template(shape, box, (w, h))
            if sigma:
                t = ndimage.gaussian_filter(t, sigma)
            iou = float(np.minimum(t, coverage).sum() / max(np.maximum(t, coverage).sum(), 1e-6))
            if iou > best[1]:
                best = (shape, iou, box)
    return best


def detect(image: Image.Image | np.ndarray) -> list[Detection]:
    """Detect shapes-world objects in an RGB image (PIL or (H, W, 3) array, uint8 or floats in [0, 1])."""
    img = _as_array(image)
    h, w, _ = img.shape
    smooth = ndimage.median_filter(img, size=(3, 3, 1), mode="nearest")  # (H, W, 3)
    border = np.concatenate([smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1]])  # (2W+2H, 3)
    bg = np.median(border, axis=0)  # (3,)
    diff = smooth - bg  # (H, W, 3)
    fg = np.sqrt((diff**2).sum(axis=2)) > FG_THRESHOLD
    min_area = max(4, int(MIN_AREA_FRAC * h * w))
    eight = np.ones((3, 3), dtype=bool)
    labels, n = ndimage.label(fg, structure=eight)
    found: list[Detection] = []
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == idx
        if comp.sum() < min_area:
            continue
        # Work in the component's box grown by PAD px, so the half-level cut can recover edge pixels.
        ys = slice(max(sl[0].start - PAD, 0), min(sl[0].stop + PAD, h))
        xs = slice(max(sl[1].start - PAD, 0), min(sl[1].stop + PAD, w))
        region = ndimage.binary_dilation(labels[ys, xs] == idx, structure=eight, iterations=2)
        color_rgb = _core_color(smooth[ys, xs][labels[ys, xs] == idx], bg)
        span = color_rgb - bg
        denom = float((span**2).sum())
        if denom < FG_THRESHOLD**2:
            continue
        # Coverage from the unfiltered image: the median filter would round off thin star points.
        t = np.clip(((img[ys, xs] - bg) @ span) / denom, 0.0, 1.0) * region  # (h', w') in [0, 1]
        parts, m = ndimage.label(t > 0.5, structure=eight)
        for pidx, psl in enumerate(ndimage.find_objects(parts), start=1):
            part = parts[psl] == pidx
            area = int(part.sum())
            y0p, x0p = psl[0].start + ys.start, psl[1].start + xs.start
            touches = y0p == 0 or x0p == 0 or y0p + part.shape[0] == h or x0p + part.shape[1] == w
            if area < min_area or touches:  # objects never touch the border; a region that does is background
                continue
            cov = t * ndimage.binary_dilation(parts == pidx, structure=eight, iterations=2)  # (h', w')
            shape, iou, (bx0, by0, bx1, by1) = _classify(cov)
            box = (bx0 + xs.start, by0 + ys.start, bx1 + xs.start, by1 + ys.start)
            if iou < MIN_SHAPE_IOU:
                continue
            pix = smooth[y0p:y0p + part.shape[0], x0p:x0p + part.shape[1]][part]  # (area, 3)
            found.append(Detection(shape, nearest_color(_core_color(pix, bg)),
                                   tuple(float(v) for v in box), area, iou))
    found.sort(key=lambda d: (d.box[1], d.box[0]))
    return found


def match_objects(expected: list[tuple[str, str, tuple[float, float]]], detections: list[Detection],
                  size: tuple[int, int], tolerance: float = CENTER_TOLERANCE) -> list[int | None]:
    """For each expected (shape, colour, centre as fractions), the index of its matching detection or None.

    Greedy by centre distance; each detection matches at most one expected object.
    """
    pairs = []
    for i, (shape, color, (cx, cy)) in enumerate(expected):
        for j, d in enumerate(detections):
            dx, dy = d.center(size)
            if d.shape == shape and d.color == color and abs(dx - cx) <= tolerance and abs(dy - cy) <= tolerance:
                pairs.append((abs(dx - cx) + abs(dy - cy), i, j))
    out: list[int | None] = [None] * len(expected)
    used: set[int] = set()
    for _, i, j in sorted(pairs):
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out
