"""Text-generation backends with one contract: transformers, llama.cpp (GGUF) and OpenAI-compatible HTTP.

`open_llm(url | path | hub id)` opens one (`t2i.backends.llm.load_llm(name)` also takes registered names);
`LLM.complete(prompt, settings, on_token, cancel=)` / `LLM.chat(...)` answer.
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
from t2i.llm.loading import open_llm

__all__ = ["LLM", "Completion", "LLMError", "Message", "SamplingSettings", "TextAccumulator", "as_messages",
           "open_llm", "stream"]
