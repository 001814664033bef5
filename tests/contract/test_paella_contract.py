"""The Paella backend keeps the backend contract, on a tiny saved pipeline with a CLIP image encoder (so that
it makes image variations)."""

from __future__ import annotations

import pytest

from t2i.types import GenerationRequest

from .suite import BackendContract, ContractCase


class TestPaellaContract(BackendContract):
    @pytest.fixture(scope="class")
    def case(self, tmp_path_factory: pytest.TempPathFactory) -> ContractCase:
        pytest.importorskip("torch")
        from t2i.backends import default_registry

        from ..test_paella import save_tiny_variation_pipeline

        folder = str(save_tiny_variation_pipeline(tmp_path_factory.mktemp("paella") / "tiny", steps=3))
        registry = default_registry()
        _, backend = registry.load(folder, {"device": "cpu"})
        request = GenerationRequest("a red circle", model=folder, seed=1, steps=3, guidance=2.0, width=32, height=32,
                                    sampler="paella", negative_prompt="")
        return ContractCase(registry, backend, request, load_time=("byt5", "google/byt5-xl"))
