"""What a request from an untrusted source (an image's metadata, an HTTP body) may decide.

The rule: such a request names models only by registered name, and sets no option that names a file.
URLs, local paths and file-bearing options come only from the command line, the API call's own arguments
or the server's configuration, so a crafted PNG cannot choose where an API key is sent, make t2i open a
local file, or load a pickle.  A replay that needs one of them asks for it (`--model`, `--presample-model`,
`--compose-model`, `--option KEY=VALUE`).
"""

from __future__ import annotations

from collections.abc import Collection

from t2i.registry import ModelRegistry
from t2i.types import GenerationRequest, RequestError


def file_options() -> frozenset[str]:
    """Every backend option that names a file or folder (from the backends' option schemas)."""
    from t2i.backends.options import file_options as of_schema
    from t2i.backends.paella import SCHEMA as PAELLA
    from t2i.backends.sdxl import SCHEMA as SDXL

    return of_schema(SDXL) | of_schema(PAELLA)


def check_untrusted_request(request: GenerationRequest, registry: ModelRegistry, source: str,
                            given: Collection[str] = ()) -> None:
    """Raise RequestError when `request` (read from `source`) names a model by anything but a registered name,
    or sets a file-bearing option.  `given`: what the caller supplied itself and so replaces the request's
    own ("model", "presample_model", "compose_model", and option keys)."""
    models = [("model", "the model", request.model, "--model")]
    if request.presample.enabled and request.presample.model is not None:
        models.append(("presample_model", "the presampler", request.presample.model, "--presample-model"))
    if request.compose.enabled and request.compose.model is not None and request.compose.program is None:
        models.append(("compose_model", "the composer", request.compose.model, "--compose-model"))
    for key, what, name, flag in models:
        if key not in given and not registry.is_registered(name):  # a name, or a registered model's hub id
            raise RequestError(f"{source} names {what} {name[:200]!r}, which is not a registered model name; a "
                               f"request from an image or an HTTP body names models only by registered name "
                               f"(pass {flag} to choose one yourself)")
    for key in sorted(set(request.model_options) & file_options()):
        if key not in given:
            raise RequestError(f"{source} sets the option {key}, which names a file; options that name files come "
                               f"only from you (pass --option {key}=... to set it)")
