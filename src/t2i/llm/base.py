"""The one contract of text-generation backends, and the pieces every backend shares.

Every backend is built by a loader, then `complete(prompt, settings, on_token)` or
`chat(messages, settings, on_token)` returns a `Completion`.  Tokens stream through `on_token(piece)`;
returning False from it cancels (the completion comes back with finish_reason "cancelled" and the text
so far).  Stop strings, the response-size cap and cancelling are applied by one `TextAccumulator`, so
all backends behave alike.  A `CancelToken` (t2i.cancel) passed as `cancel=` is checked before the first
token and once per generated token or streamed chunk; once it is set the call raises `Cancelled` (from any
thread: the server's DELETE, the CLI's Ctrl-C) and returns no text.  This module is pure Python: presample
and compose import it, never a backend.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from t2i.cancel import CancelToken

MAX_STOP_STRINGS = 16
FINISH_REASONS = ("stop", "length", "cap", "cancelled")

TokenCallback = Callable[[str], "bool | None"]


class LLMError(RuntimeError):
    """A language model could not be loaded or did not answer; the message says what to do."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample.  temperature 0 = greedy; top_k 0, top_p 1 and min_p 0 switch those filters off.

    Filters apply in the order repetition penalty -> temperature -> top-k -> top-p -> min-p
    (min-p: keep tokens whose probability is at least min_p times the most likely one's).
    `max_chars` caps the response text whatever the token count (finish_reason "cap").
    """

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()
    max_chars: int = 20_000

    def __post_init__(self) -> None:
        def num(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"sampling setting {name} must be a number in [{lo}, {hi}], got {v!r}")

        num("temperature", 0.0, 10.0)
        num("top_p", 0.0, 1.0)
        num("min_p", 0.0, 1.0)
        num("repetition_penalty", 0.1, 10.0)
        for name, lo, hi in (("top_k", 0, 1_000_000), ("max_tokens", 1, 1_000_000), ("seed", 0, 2**63 - 1),
                             ("max_chars", 1, 10_000_000)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"sampling setting {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError("stop must be a sequence of non-empty strings")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str  # "system", "user" or "assistant"
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"message role must be system, user or assistant, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ValueError("message content must be a string")


@dataclass(frozen=True)
class Completion:
    """What a backend answered.  `n_prompt_tokens`/`n_tokens` are 0 where the backend does not say."""

    text: str
    finish_reason: str
    n_tokens: int = 0
    n_prompt_tokens: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")


class LLM(Protocol):
    """A loaded language model.  `name` is what metadata records (never a key or a secret)."""

    name: str

    def complete(self, prompt: str, settings: SamplingSettings, on_token: TokenCallback | None = None,
                 cancel: CancelToken | None = None) -> Completion:
        """Continue `prompt` (raw text; special tokens in it are honoured); `cancel` set -> `Cancelled`."""
        ...

    def chat(self, messages: Sequence[Message], settings: SamplingSettings, on_token: TokenCallback | None = None,
             cancel: CancelToken | None = None) -> Completion:
        """Answer a conversation with the model's own chat template; `cancel` set -> `Cancelled`."""
        ...


def as_messages(messages: Sequence[Message | Mapping[str, str]]) -> list[Message]:
    """Accept Message objects or {"role", "content"} mappings."""
    out = []
    for m in messages:
        out.append(m if isinstance(m, Message) else Message(str(m.get("role")), m.get("content")))  # type: ignore[arg-type]
    if not out:
        raise ValueError("a chat needs at least one message")
    return out


class TextAccumulator:
    """Collects streamed pieces; applies stop strings, the size cap and cancelling.

    Text that could be the start of a stop string is held back from `on_token` until it is known not to
    be one, so a stream never shows a stop string.  `add` returns False once generation must end.
    """

    def __init__(self, settings: SamplingSettings, on_token: TokenCallback | None = None) -> None:
        self.settings = settings
        self.on_token = on_token
        self.text = ""  # everything accepted so far
        self.emitted = 0  # characters of self.text passed to on_token
        self.n_tokens = 0
        self.finish_reason: str | None = None

    def add(self, piece: str) -> bool:
        if self.finish_reason is not None:
            return False
        self.n_tokens += 1
        self.text += piece
        for s in self.settings.stop:
            at = self.text.find(s)
            if at >= 0:
                self.text = self.text[:at]
                self.finish_reason = "stop"
        if self.finish_reason is None and len(self.text) >= self.settings.max_chars:
            self.text = self.text[: self.settings.max_chars]
            self.finish_reason = "cap"
        safe = len(self.text) if self.finish_reason else len(self.text) - self._held_back()
        if self.on_token is not None and safe > self.emitted:
            if self.on_token(self.text[self.emitted:safe]) is False and self.finish_reason is None:
                self.finish_reason = "cancelled"
            self.emitted = safe
        return self.finish_reason is None

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        best = 0
        for s in self.settings.stop:
            for k in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:k]):
                    best = k
                    break
        return best

    def finish(self, reason: str = "length", n_prompt_tokens: int = 0, n_tokens: int | None = None,
               **extra: Any) -> Completion:
        """The completion; `reason` is used when nothing ended generation earlier (EOS: "stop").

        `n_tokens` is the backend's token count; by default the number of pieces added."""
        final = self.finish_reason or reason
        if self.on_token is not None and len(self.text) > self.emitted and final != "cancelled":
            self.on_token(self.text[self.emitted:])
            self.emitted = len(self.text)
        return Completion(self.text, final, self.n_tokens if n_tokens is None else n_tokens, n_prompt_tokens, extra)


def stream(run: Callable[[TokenCallback], Completion]) -> Iterator[str]:
    """Turn a call that takes `on_token` into an iterator of pieces; closing the iterator cancels.

    Example: `for piece in stream(lambda cb: llm.complete(prompt, settings, cb)): print(piece, end="")`.
    """
    pieces: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()
    done = object()
    failure: list[BaseException] = []

    def on_token(piece: str) -> bool:
        if stop.is_set():
            return False
        pieces.put(piece)
        return not stop.is_set()

    def worker() -> None:
        try:
            run(on_token)
        except BaseException as e:  # re-raised in the consumer
            failure.append(e)
        finally:
            pieces.put(done)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while (item := pieces.get()) is not done:
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so the worker never blocks on a full queue
            try:
                pieces.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
    if failure:
        raise failure[0]
