"""Contact sheets: a grid of images with short captions, optionally with the detector's boxes drawn on."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from t2i.world.detector import Detection

TILE = 160  # px per image on the sheet
CAPTION_H = 24


def draw_detections(image: Image.Image, detections: Sequence[Detection], scale: float = 1.0) -> Image.Image:
    """A copy of `image` (resized by `scale`, nearest) with each detection's box and label drawn."""
    w, h = image.size
    out = image.convert("RGB").resize((round(w * scale), round(h * scale)), Image.NEAREST)
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for d in detections:
        x0, y0, x1, y1 = (v * scale for v in d.box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 0, 255), width=2)
        label = f"{d.color} {d.shape}"
        tx, ty = x0, max(0, y0 - 11)
        draw.rectangle((tx, ty, tx + 6 * len(label) + 2, ty + 10), fill=(0, 0, 0))
        draw.text((tx + 1, ty - 1), label, fill=(255, 255, 255), font=font)
    return out


def contact_sheet(images: Sequence[Image.Image], captions: Sequence[str] | None = None,
                  columns: int | None = None) -> Image.Image:
    """Images tiled on a grid (each scaled to fit TILE px), each with up to two lines of caption."""
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    n = len(images)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    cap_h = CAPTION_H if captions else 0
    sheet = Image.new("RGB", (cols * (TILE + 4) + 4, rows * (TILE + cap_h + 4) + 4), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, img in enumerate(images):
        x = 4 + (k % cols) * (TILE + 4)
        y = 4 + (k // cols) * (TILE + cap_h + 4)
        scale = TILE / max(img.size)
        tile = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                         Image.NEAREST if scale >= 1 else Image.BICUBIC)
        sheet.paste(tile, (x, y))
        if captions:
            text = captions[k]
            per_line = TILE // 6
            draw.text((x, y + TILE + 1), text[:per_line], fill=(230, 230, 230), font=font)
            draw.text((x, y + TILE + 12), text[per_line:2 * per_line], fill=(230, 230, 230), font=font)
    return sheet
