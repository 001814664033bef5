"""No figure moves: the shipped models with their defaults render the committed reference images again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.reference_images import CASES, FOLDER, render

# Float noise between CPUs may move a pixel by a level or two (and an edge pixel further); a changed model,
# schedule, default or program moves shapes, which is tens of levels over many pixels.
MAX_LEVELS = 3
MAX_SHARE_BEYOND = 0.005  # of pixel values further than MAX_LEVELS from the reference


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
    beyond = float((diff > MAX_LEVELS).mean())
    assert beyond <= MAX_SHARE_BEYOND, (f"{case.name}: {beyond:.2%} of pixel values differ by more than "
                                        f"{MAX_LEVELS} levels (largest {int(diff.max())})")
