"""No figure moves: the shipped models with their defaults render the committed reference images again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.reference_images import CASES, FOLDER, render

# Float noise between CPUs may move a pixel by a level or two; a changed model, schedule, default or
# program moves shapes, which is tens of levels over many pixels.
MAX_LEVELS = 3


@pytest.fixture(scope="module")
def loaded():
    from t2i.backends import default_registry

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the references were rendered with two threads
    yield default_registry(), {}
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shipped_model_renders_its_reference(case, loaded):
    registry, models = loaded
    want = np.asarray(Image.open(FOLDER / f"{case.name}.png").convert("RGB")).astype(int)
    got = render(case, registry, models).astype(int)
    assert got.shape == want.shape
    diff = np.abs(got - want)
    assert diff.max() <= MAX_LEVELS, (f"{case.name}: {int((diff > MAX_LEVELS).sum())} pixel values differ by more "
                                      f"than {MAX_LEVELS} levels (largest {int(diff.max())})")
