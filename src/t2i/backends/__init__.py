"""Image backends, one per model kind, all with one contract (`t2i.backends.base`): load, then
generate(request, callback, cancel) -> result.

Backend modules import their heavy libraries (torch, diffusers) only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from t2i.backends.base import Backend
from t2i.registry import ModelRegistry, ResolvedModel


def _load_sdxl(resolved: ResolvedModel, options: Mapping[str, Any]) -> Backend:
    from t2i.backends.sdxl import SDXLBackend

    return SDXLBackend.load(resolved, options)


def _load_paella(resolved: ResolvedModel, options: Mapping[str, Any]) -> Backend:
    from t2i.backends.paella import PaellaBackend

    return PaellaBackend.load(resolved, options)


def default_registry() -> ModelRegistry:
    """A registry with the built-in models and a loader for every backend t2i has."""
    registry = ModelRegistry()
    registry.register_loader("sdxl", _load_sdxl)
    registry.register_loader("paella", _load_paella)
    return registry
