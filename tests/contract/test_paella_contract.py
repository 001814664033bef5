"""The Paella backend keeps the backend contract, on a tiny saved pipeline with a CLIP image encoder (so that
it makes image variations)."""

from __future__ import annotations

import pytest

from t2i.types import GenerationRequest

from .suite import BackendContract, ContractCase


class TestPaellaContract(BackendContract):
    @pytest.fixture(scope="class")
    def case(self, tmp_path_factory: pytest.TempPathFactory) -> ContractCase:
        torch = pytest.importorskip("torch")
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        from t2i.backends import default_registry
        from t2i.paella import Paella, VQModel
        from t2i.paella.pipeline import PaellaPipeline
        from t2i.paella.text import tiny_byt5_encoder

        from ..test_paella import TINY, TINY_VQ

        torch.manual_seed(0)
        model = Paella(TINY)
        torch.nn.init.normal_(model.clf[1].weight, std=0.2)  # zero at init: make the logits depend on the input
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16,
                                                                intermediate_size=32, num_hidden_layers=1,
                                                                num_attention_heads=2, projection_dim=8))
        pipe = PaellaPipeline(model, VQModel(TINY_VQ), tiny_byt5_encoder(16, 1, 2, 32), 16, clip_image_encoder=vision)
        folder = str(pipe.save_pretrained(tmp_path_factory.mktemp("paella") / "tiny",
                                          {"steps": 3, "guidance": 2.0, "width": 32, "height": 32}))
        registry = default_registry()
        _, backend = registry.load(folder, {"device": "cpu"})
        request = GenerationRequest("a red circle", model=folder, seed=1, steps=3, guidance=2.0, width=32, height=32,
                                    sampler="paella", negative_prompt="")
        return ContractCase(registry, backend, request, load_time=("byt5", "google/byt5-xl"))
