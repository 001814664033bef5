"""t2i: text to image with presampling (TIPO), composition (Omost) and several backends (SDXL/KOALA, Paella).

    import t2i
    pipe = t2i.load("shapes-xl")
    result = pipe("a red circle above a blue square", seed=1)

The public names are imported when first used, so `import t2i` loads no torch, diffusers or transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "load": "t2i.pipeline",
    "Pipeline": "t2i.pipeline",
    "Result": "t2i.pipeline",
    "GenerationRequest": "t2i.types",
    "PresampleOptions": "t2i.types",
    "ComposeOptions": "t2i.types",
    "RequestError": "t2i.types",
    "ModelError": "t2i.registry",
    "LimitError": "t2i.limits",
    "Limits": "t2i.limits",
    "CancelToken": "t2i.cancel",
    "Cancelled": "t2i.cancel",
    "read_image_metadata": "t2i.metadata",
}

__all__ = ["__version__", "load", "Pipeline", "Result", "GenerationRequest", "PresampleOptions", "ComposeOptions",
           "RequestError", "ModelError", "LimitError", "Limits", "CancelToken", "Cancelled", "read_image_metadata"]

if TYPE_CHECKING:
    from t2i.cancel import Cancelled, CancelToken
    from t2i.limits import LimitError, Limits
    from t2i.metadata import read_image_metadata
    from t2i.pipeline import Pipeline, Result, load
    from t2i.registry import ModelError
    from t2i.types import ComposeOptions, GenerationRequest, PresampleOptions, RequestError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 't2i' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
