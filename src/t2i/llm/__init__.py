"""Text-generation backends with one contract: transformers, llama.cpp (GGUF) and OpenAI-compatible HTTP.

`load_llm(name)` opens one; `LLM.complete(prompt, settings, on_token)` / `LLM.chat(...)` answer.
Backends are imported when used, so importing this package loads neither torch nor llama.cpp.
"""

from t2i.llm.base import (
    LLM,
    Completion,
    LLMError,
    Message,
    SamplingSettings,
    TextAccumulator,
    as_messages,
    stream,
)
from t2i.llm.loading import load_llm

__all__ = ["LLM", "Completion", "LLMError", "Message", "SamplingSettings", "TextAccumulator", "as_messages",
           "load_llm", "stream"]
