"""Paella v3 (Rampas et al.): a token model that predicts VQGAN tokens, sampled by iterative
re-noising.  Module names match the released state dicts; see model.py, vqgan.py, sampler.py."""

from t2i.paella.model import Paella, PaellaConfig
from t2i.paella.sampler import SamplerSettings, sample_tokens
from t2i.paella.vqgan import VQGANConfig, VQModel

__all__ = ["Paella", "PaellaConfig", "SamplerSettings", "VQGANConfig", "VQModel", "sample_tokens"]
