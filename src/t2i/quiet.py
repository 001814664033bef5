"""Keep third-party loading bars and notices (diffusers, transformers, huggingface_hub) off the user's
terminal while t2i loads and runs models; t2i's own progress is shown by its callers instead."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# modules whose warnings a quiet run hides (fallback notices, deprecations meant for their own users)
NOISY_MODULES = r"(torch|diffusers|transformers|huggingface_hub|accelerate|safetensors|llama_cpp)(\.|$)"


def _loggers() -> list:
    """The `logging` helpers of the installed libraries that print loading bars and notices."""
    out = []
    if importlib.util.find_spec("diffusers") is not None:
        from diffusers.utils import logging as dlog

        out.append(dlog)
    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as tlog

        out.append(tlog)
    return out


def silence_libraries() -> None:
    """Quiet the libraries for the rest of the process (the command line's choice)."""
    for log in _loggers():
        log.disable_progress_bar()
        log.set_verbosity_error()
    warnings.filterwarnings("ignore", module=NOISY_MODULES)


@contextmanager
def quiet_libraries(quiet: bool = True) -> Iterator[None]:
    """Within the block, the libraries print no loading bars, notices or warnings; their settings are put
    back afterwards (a library imported inside the block keeps them off).  `quiet=False` changes nothing."""
    if not quiet:
        yield
        return
    loggers = _loggers()
    saved = [(log, log.get_verbosity(), log.is_progress_bar_enabled()) for log in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=NOISY_MODULES)
        for log in loggers:
            log.disable_progress_bar()
            log.set_verbosity_error()
        try:
            yield
        finally:
            for log, verbosity, bars in saved:
                log.set_verbosity(verbosity)
                if bars:
                    log.enable_progress_bar()
