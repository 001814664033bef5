"""The SDXL backend keeps the backend contract, on a tiny random SDXL pipeline of shapes-xl's classes."""

from __future__ import annotations

import pytest

from t2i.types import GenerationRequest

from .suite import BackendContract, ContractCase


class TestSDXLContract(BackendContract):
    @pytest.fixture(scope="class")
    def case(self, tmp_path_factory: pytest.TempPathFactory) -> ContractCase:
        pytest.importorskip("diffusers")
        from t2i.backends import default_registry

        from ..tiny_sdxl import build_tiny_sdxl

        folder = str(build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl")))
        registry = default_registry()
        _, backend = registry.load(folder, {"device": "cpu"})
        request = GenerationRequest("a red circle", model=folder, seed=5, steps=2, guidance=2.0, width=32, height=32,
                                    sampler="euler", negative_prompt="")
        return ContractCase(registry, backend, request, load_time=("dtype", "bfloat16"))
