"""The test suite's fake backend (tests/fake_backend.py) keeps the backend contract."""

from __future__ import annotations

import pytest

from t2i.registry import Licence, ModelSpec
from t2i.types import GenerationRequest

from ..fake_backend import fake_registry
from .suite import BackendContract, ContractCase

SPEC = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("MIT", "", "Test model."), "noise for tests",
                 {"steps": 3, "guidance": 2.0, "width": 16, "height": 12, "sampler": "euler", "negative_prompt": ""})


class TestFakeContract(BackendContract):
    @pytest.fixture(scope="class")
    def case(self) -> ContractCase:
        registry = fake_registry(SPEC)
        _, backend = registry.load("fake")
        request = GenerationRequest("a red circle", model="fake", seed=3, steps=3, guidance=2.0, width=16, height=12,
                                    sampler="euler", negative_prompt="")
        return ContractCase(registry, backend, request, load_time=("dtype", "bfloat16"))
