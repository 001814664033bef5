"""Reference renders of the shipped models with their defaults, on a sample of suite lines.

A refactor must not move a figure: `test_reference_images.py` renders these cases again and compares them
with the PNGs committed beside it.  `python -m tests.reference_images [NAME ...]` rewrites those PNGs (only when a
change is meant to alter the models' output, and said so in docs/changes.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions

FOLDER = Path(__file__).parent / "data" / "reference_images"


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    line: int  # index into the built-in suite
    presample: bool = False
    compose: bool | None = False  # None: the model's default (auto for shapes-xl)


# suite lines: 0 single object, 70 two objects, 140 counting, 200 colours, 270 position, 330 colour attribution
CASES = (
    Case("shapes-xl-single", "shapes-xl", 0),
    Case("shapes-xl-position", "shapes-xl", 270),
    Case("shapes-koala-counting", "shapes-koala", 140),
    Case("paella-tiny-colours", "paella-tiny", 200),
    Case("shapes-xl-composed", "shapes-xl", 330, compose=True),
    Case("shapes-koala-presampled", "shapes-koala", 70, presample=True),
    Case("shapes-xl-default-relation", "shapes-xl", 290, compose=None),
)


def render(case: Case, registry, loaded: dict) -> np.ndarray:
    """Case `case` rendered as the eval runner does (seed = line index), as an (H, W, 3) uint8 array."""
    from t2i.generate import generate
    from t2i.stages import open_composer, open_presampler
    from t2i.world.suite import builtin_suite

    line = builtin_suite()[case.line]
    if case.model not in loaded:
        loaded[case.model] = registry.load(case.model)[1]
    kwargs = {}
    if case.presample:
        kwargs["presampler"] = loaded.setdefault("presampler", open_presampler(None, registry))
    if case.compose is not False:
        kwargs["composer"] = loaded.setdefault("composer", open_composer(None, registry))
    request = GenerationRequest(prompt=line.prompt, model=case.model, seed=case.line,
                                presample=PresampleOptions(enabled=case.presample),
                                compose=ComposeOptions(enabled=case.compose))
    result = generate(request, registry, backend=loaded[case.model], **kwargs)
    return np.asarray(result.images[0].convert("RGB"))


def main() -> int:
    import torch
    from PIL import Image

    from t2i.backends import default_registry

    torch.set_num_threads(2)
    registry, loaded = default_registry(), {}
    FOLDER.mkdir(parents=True, exist_ok=True)
    for case in CASES if len(sys.argv) < 2 else [c for c in CASES if c.name in sys.argv[1:]]:
        Image.fromarray(render(case, registry, loaded)).save(FOLDER / f"{case.name}.png")
        print("wrote", case.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
