"""A client for OpenAI-compatible servers (llama.cpp server, Ollama, vLLM, TGI), standard library only.

Streams with server-sent events; retries connection failures, timeouts, 429 and 5xx answers with
exponential back-off, but only before the first token arrived (a retry mid-stream would repeat text).
The API key goes in the Authorization header and nowhere else: not in `repr`, errors, logs or metadata.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from t2i.llm.base import Completion, LLMError, Message, SamplingSettings, TextAccumulator, TokenCallback

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_LINE = 1 << 20  # one SSE line larger than this is not an answer we take


class _Retryable(Exception):
    pass


class OpenAICompatibleLLM:
    """`base_url` like http://127.0.0.1:8080/v1; `model` is the server's model name."""

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 api_key_env: str | None = "T2I_LLM_API_KEY", timeout: float = 60.0, retries: int = 2,
                 backoff: float = 0.5, extra_sampling: bool = True) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LLMError(f"base_url must be an http(s) URL, got {base_url!r}")
        if parsed.username or parsed.password:
            raise LLMError("put credentials in api_key (or its environment variable), not in the URL")
        if timeout <= 0 or retries < 0:
            raise LLMError("timeout must be positive and retries non-negative")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.extra_sampling = extra_sampling
        self.name = f"{model}@{self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    # ------------------------------------------------------------------ the contract

    def complete(self, prompt: str, settings: SamplingSettings,
                 on_token: TokenCallback | None = None) -> Completion:
        body = {"prompt": prompt, **self._sampling(settings)}
        return self._run("/completions", body, lambda c: c.get("text") or "", settings, on_token)

    def chat(self, messages: Sequence[Message], settings: SamplingSettings,
             on_token: TokenCallback | None = None) -> Completion:
        body = {"messages": [{"role": m.role, "content": m.content} for m in messages], **self._sampling(settings)}
        return self._run("/chat/completions", body, lambda c: (c.get("delta") or {}).get("content") or "",
                         settings, on_token)

    # ------------------------------------------------------------------ internals

    def _sampling(self, s: SamplingSettings) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "temperature": s.temperature, "top_p": s.top_p,
                                "max_tokens": s.max_tokens, "seed": s.seed, "stream": True}
        if s.stop:
            body["stop"] = list(s.stop)[:4]  # the OpenAI API takes at most 4; the rest are applied here
        if self.extra_sampling:  # understood by llama.cpp server and vLLM; sent only when not neutral
            if s.top_k:
                body["top_k"] = s.top_k
            if s.min_p:
                body["min_p"] = s.min_p
            if s.repetition_penalty != 1.0:
                body["repeat_penalty"] = body["repetition_penalty"] = s.repetition_penalty
        return body

    def _run(self, path: str, body: dict, text_of: Any, settings: SamplingSettings,
             on_token: TokenCallback | None) -> Completion:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        url = self.base_url + path
        last: str = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            acc = TextAccumulator(settings, on_token)
            try:
                return self._once(url, data, headers, text_of, acc)
            except _Retryable as e:
                last = str(e)
        raise LLMError(f"{url}: no answer after {self.retries + 1} attempts ({last})")

    def _once(self, url: str, data: bytes, headers: dict, text_of: Any, acc: TextAccumulator) -> Completion:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        started = False
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reason, usage = "length", {}
                for event in _sse_events(response):
                    if "error" in event:
                        raise LLMError(f"{url}: the server answered an error: {str(event['error'])[:300]}")
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        piece = text_of(choice)
                        if piece:
                            started = True
                            if not acc.add(piece):
                                return acc.finish(reason, n_prompt_tokens=int(usage.get("prompt_tokens", 0)))
                        if choice.get("finish_reason"):
                            reason = "stop" if choice["finish_reason"] == "stop" else "length"
                return acc.finish(reason, n_prompt_tokens=int(usage.get("prompt_tokens", 0) or 0))
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace") if e.fp else ""
            if e.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {e.code}") from e
            raise LLMError(f"{url}: HTTP {e.code} {e.reason}: {detail}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if started:
                raise LLMError(f"{url}: the connection broke mid-answer ({e})") from e
            raise _Retryable(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from e


def _sse_events(response: Any) -> Iterator[dict]:
    """JSON objects from a server-sent-event stream (or one plain JSON body when the server ignores stream)."""
    kind = response.headers.get("Content-Type", "")
    if "text/event-stream" not in kind:
        raw = response.read(64 << 20)
        try:
            yield _fake_stream(json.loads(raw))
        except ValueError as e:
            raise LLMError(f"the server answered something that is not JSON: {raw[:200]!r}") from e
        return
    while True:
        line = response.readline(MAX_LINE)
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as e:
            raise LLMError(f"the server sent a malformed event: {payload[:200]!r}") from e
        if isinstance(event, dict):
            yield event


def _fake_stream(body: Any) -> dict:
    """A non-streamed answer in the shape of one streamed event."""
    if not isinstance(body, dict):
        raise LLMError("the server's answer is not a JSON object")
    choices = []
    for c in body.get("choices") or []:
        text = c.get("text")
        if text is None:
            text = (c.get("message") or {}).get("content") or ""
        choices.append({"text": text, "delta": {"content": text}, "finish_reason": c.get("finish_reason")})
    return {"choices": choices, "usage": body.get("usage"), **({"error": body["error"]} if "error" in body else {})}
