"""Training images for distillation: the shapes world (the default) or a folder of the user's own
captioned images, which a hub teacher (SDXL, KOALA) needs.

A folder holds image files (png, jpg, jpeg, webp; subfolders included) and their captions, either in a
`metadata.jsonl` at its top ({"file_name": "relative/path.png", "text": "..."} per line, the Hugging Face
imagefolder layout) or in a `.txt` file beside each image with the same stem (the layout most LoRA and
fine-tuning tools read).  Every image needs a caption.  Images are centre-cropped to a square and resized
to the training size; they are read in batches, never all at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
METADATA = "metadata.jsonl"


class DataError(ValueError):
    """A data folder that cannot be trained on (no images, an image without a caption, ...)."""


@dataclass(frozen=True)
class CaptionedImages:
    root: Path
    files: tuple[Path, ...]  # relative to root, sorted
    captions: tuple[str, ...]  # one per file

    def fingerprint(self) -> str:
        """A digest of the file names, sizes and captions: a work folder's latents belong to exactly these."""
        h = hashlib.sha256()
        for f, c in zip(self.files, self.captions, strict=True):
            h.update(f"{f.as_posix()}\0{(self.root / f).stat().st_size}\0{c}\n".encode())
        return h.hexdigest()[:16]


def _metadata_captions(root: Path, path: Path) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, text = row["file_name"], row["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}:{n}: each line must be a JSON object with file_name and text ({e})") from e
        if not isinstance(name, str) or not isinstance(text, str):
            raise DataError(f"{path}:{n}: file_name and text must be strings")
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{path}:{n}: file_name {name!r} must be a path inside {root}")
        if not (root / rel).is_file():
            raise DataError(f"{path}:{n}: {name} is not a file in {root}")
        out[rel] = text.strip()
    return out


def read_image_folder(folder: str | Path) -> CaptionedImages:
    """The folder's images and captions (see the module docstring); DataError when it cannot be used."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (give a folder of images with captions)")
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    meta = root / METADATA
    if meta.is_file():
        known = _metadata_captions(root, meta)
        captions = [known.get(f) for f in files]
    else:
        captions = [(root / f).with_suffix(".txt").read_text(encoding="utf-8").strip()
                    if (root / f).with_suffix(".txt").is_file() else None for f in files]
    missing = [f.as_posix() for f, c in zip(files, captions, strict=True) if not c]
    if missing:
        where = f"a line in {METADATA}" if meta.is_file() else "a .txt file of the same name beside it"
        raise DataError(f"{len(missing)} of {len(files)} images in {root} have no caption (each needs {where}), "
                        f"e.g. {', '.join(missing[:3])}")
    return CaptionedImages(root, tuple(files), tuple(str(c) for c in captions))


def load_square(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the image centre-cropped to a square and resized (alpha over white, as the
    detector reads images: `t2i.world.detector.load_rgb`)."""
    from PIL import Image

    from t2i.world.detector import ImageReadError, load_rgb

    try:
        rgb = load_rgb(path)  # (H, W, 3) float32 in [0, 1]
    except ImageReadError as e:
        raise DataError(str(e)) from e
    im = Image.fromarray((rgb * 255).round().astype(np.uint8))
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def image_batches(data: CaptionedImages, size: int, batch: int) -> Iterator[np.ndarray]:
    """The folder's images in order, `batch` at a time, as (b, size, size, 3) uint8 arrays."""
    for i in range(0, len(data.files), batch):
        yield np.stack([load_square(data.root / f, size) for f in data.files[i:i + batch]])
