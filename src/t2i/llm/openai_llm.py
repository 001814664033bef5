"""A client for OpenAI-compatible servers (llama.cpp server, Ollama, vLLM, TGI), standard library only.

Streams with server-sent events; retries connection failures, timeouts, 429 and 5xx answers with
exponential back-off, but only before the first token arrived (a retry mid-stream would repeat text).

Time, three limits:
- `start_deadline` (default 30 s): from the start of a call until the first text token, all attempts and
  back-off sleeps included.  A server that refuses, never answers, keeps failing, hangs after its headers or
  trickles bytes, keep-alive lines or empty events without any text fails within it.  A server that ignores
  `stream` sends its whole answer at once, so that answer must come within it too.
- `deadline` (default 600 s): the whole call, streaming included, so a server that trickles tokens forever is
  stopped too; a server that streams steadily is not cut before it.  The smaller of the two applies until the
  first token.
- `timeout` (default 10 s): each connect, send and socket read waits at most min(timeout, time left of the
  deadline that applies now).

Cancelling: a `cancel=` token is checked before the request is sent, during back-off sleeps and at every
streamed event; once set, the call raises `Cancelled` and the connection is closed.  A server that sends
nothing is noticed at its next event, or when the read times out.

The API key goes in the Authorization header, only to the URL given, and nowhere else: not in `repr`, errors,
logs or metadata.  Redirects are never followed (urllib's handler would resend the header to the new host).
A proxy from the environment (http_proxy, https_proxy, no_proxy) is used as urllib does: for an http URL
that proxy sees the request, key included; for https it only relays the encrypted tunnel.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import math
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

from t2i.cancel import CancelToken, check
from t2i.llm.base import Completion, LLMError, Message, SamplingSettings, TextAccumulator, TokenCallback

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_LINE = 1 << 20  # one SSE line larger than this is not an answer we take

DEFAULT_TIMEOUT = 10.0  # seconds per connect, send or read
DEFAULT_START_DEADLINE = 30.0  # seconds from the start of a call until the first token
DEFAULT_DEADLINE = 600.0  # seconds for one whole call, streaming included
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.5  # first back-off sleep; doubles per retry
MAX_SECONDS = 3600.0  # upper bound for timeout, start_deadline and deadline
MAX_RETRIES = 10
MAX_BACKOFF = 5.0  # no single back-off sleep is longer
CANCEL_POLL = 0.05  # seconds between looks at the cancel token during a back-off sleep


def backoff_seconds(backoff: float, retry: int) -> float:
    """The sleep before retry number `retry` (1 = the first retry)."""
    return min(MAX_BACKOFF, backoff * 2 ** (retry - 1))


def _sleep(seconds: float, cancel: CancelToken | None) -> None:
    """time.sleep(seconds), raising Cancelled within CANCEL_POLL seconds of `cancel` being set."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        check(cancel, "a back-off sleep before a retry")
        time.sleep(min(CANCEL_POLL, left))
    check(cancel, "a back-off sleep before a retry")


def check_seconds(option: str, value: object, upper: float = MAX_SECONDS) -> float:
    """`value` as a positive finite number of seconds up to `upper`, else an LLMError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= upper:
        raise LLMError(f"LLM option {option} must be a number of seconds in (0, {upper:g}], got {value!r} "
                       f"(--llm-option {option}=S)")
    return float(value)


def check_retries(value: object) -> int:
    """`value` as a retry count in [0, MAX_RETRIES], else an LLMError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise LLMError(f"LLM option retries must be a whole number from 0 to {MAX_RETRIES}, got {value!r} "
                       f"(--llm-option retries=N)")
    return value


class _Retryable(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind  # refused | timeout | deadline | other


class _DeadlinePassed(TimeoutError):
    pass


class _Clock:
    """The deadlines of one call, and the timeout of each socket operation within it.

    Until `streaming` is set (the first text token arrived) the start deadline applies, then the whole-call one.
    """

    def __init__(self, timeout: float, start_deadline: float, deadline: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.end = self.started + deadline
        self.start_end = self.started + min(start_deadline, deadline)
        self.streaming = False

    def left(self) -> float:
        """Seconds left to the deadline that applies now."""
        return (self.end if self.streaming else self.start_end) - time.monotonic()

    def step(self) -> tuple[float, bool]:
        """Timeout for the next socket operation, and whether the deadline (not `timeout`) sets it."""
        left = self.left()
        if left <= 0:
            raise _DeadlinePassed("the deadline passed")
        return min(self.timeout, left), left < self.timeout


class _DeadlineReader(io.RawIOBase):
    """Socket reads whose timeout is never longer than the time left to the deadline."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock, self._raw, self._clock = sock, sock.makefile("rb", buffering=0), clock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int | None:
        limit, by_deadline = self._clock.step()
        self._sock.settimeout(limit)
        try:
            return self._raw.readinto(b)
        except TimeoutError:
            if by_deadline:
                raise _DeadlinePassed("the deadline passed") from None
            raise

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineSocket:
    """Wraps a connected socket for http.client: sends and reads keep to the call's clock."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self._sock, self._clock = sock, clock

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode == "rb":
            return io.BufferedReader(_DeadlineReader(self._sock, self._clock))
        return self._sock.makefile(mode, *args, **kwargs)

    def sendall(self, data: Any, *args: Any) -> None:
        self._sock.settimeout(self._clock.step()[0])
        self._sock.sendall(data, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineConnection:
    """Mixed into http.client's connections: the socket they connect is wrapped in a _DeadlineSocket."""

    def __init__(self, *args: Any, clock: _Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock, self._clock)


class _HTTPConnection(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, clock=self._clock), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPSConnection, clock=self._clock), req, context=_ssl_context())


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: the key must not travel to a URL the user did not give."""

    def _refuse(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any) -> None:
        target = " ".join(str(headers.get("Location", "")).split())[:200]
        fp.close()
        raise LLMError(f"{req.full_url}: the server answered HTTP {code} {msg}, a redirect to {target!r}; redirects "
                       f"are not followed (the API key goes only to the URL you gave): give the final URL instead")

    http_error_301 = http_error_302 = http_error_303 = http_error_307 = http_error_308 = _refuse


def _opener(clock: _Clock) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _HTTPHandler(clock), _HTTPSHandler(clock), _NoRedirect(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class OpenAICompatibleLLM:
    """`base_url` like http://127.0.0.1:8080/v1; `model` is the server's model name.

    `timeout`: seconds per connect, send or read; `start_deadline`: seconds from the start of a call until the
    first text token (all attempts and back-off sleeps); `deadline`: seconds for one whole call, streaming
    included; `retries`: extra attempts before the first token, at most MAX_RETRIES.
    """

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 api_key_env: str | None = "T2I_LLM_API_KEY", timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF, extra_sampling: bool = True,
                 deadline: float = DEFAULT_DEADLINE, start_deadline: float = DEFAULT_START_DEADLINE) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LLMError(f"base_url must be an http(s) URL, got {base_url!r}")
        if parsed.username or parsed.password:
            raise LLMError("put credentials in api_key (or its environment variable), not in the URL")
        self.timeout = check_seconds("timeout", timeout)
        self.start_deadline = check_seconds("start_deadline", start_deadline)
        self.deadline = check_seconds("deadline", deadline)  # may be below start_deadline: the smaller applies
        self.retries = check_retries(retries)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not 0 <= backoff <= MAX_BACKOFF:
            raise LLMError(f"backoff must be a number of seconds in [0, {MAX_BACKOFF:g}], got {backoff!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        self.backoff = float(backoff)
        self.extra_sampling = extra_sampling
        self.name = f"{model}@{self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    # ------------------------------------------------------------------ the contract

    def complete(self, prompt: str, settings: SamplingSettings, on_token: TokenCallback | None = None,
                 cancel: CancelToken | None = None) -> Completion:
        body = {"prompt": prompt, **self._sampling(settings)}
        return self._run("/completions", body, lambda c: c.get("text") or "", settings, on_token, cancel)

    def chat(self, messages: Sequence[Message], settings: SamplingSettings, on_token: TokenCallback | None = None,
             cancel: CancelToken | None = None) -> Completion:
        body = {"messages": [{"role": m.role, "content": m.content} for m in messages], **self._sampling(settings)}
        return self._run("/chat/completions", body, lambda c: (c.get("delta") or {}).get("content") or "",
                         settings, on_token, cancel)

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
             on_token: TokenCallback | None, cancel: CancelToken | None = None) -> Completion:
        check(cancel, "the request")  # before anything is sent
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        url = self.base_url + path
        clock = _Clock(self.timeout, self.start_deadline, self.deadline)
        opener = _opener(clock)
        attempts, last, wait = 0, _Retryable("other", ""), 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                wait = backoff_seconds(self.backoff, attempt)
                if wait >= clock.left():
                    break
                _sleep(wait, cancel)
            attempts += 1
            acc = TextAccumulator(settings, on_token)
            try:
                return self._once(opener, clock, url, data, headers, text_of, acc, cancel)
            except _Retryable as e:
                check(cancel, f"attempt {attempts}")  # cancelled while waiting: that, not the failure, ends it
                last = e
                if last.kind == "deadline":
                    break
        raise LLMError(self._give_up(url, attempts, clock, last, attempts < self.retries + 1))

    def _first_token_limit(self) -> tuple[float, str, str]:
        """Seconds to the first token, the option that sets them, and its name in words."""
        if self.start_deadline < self.deadline:
            return self.start_deadline, "start_deadline", "start deadline"
        return self.deadline, "deadline", "deadline"

    def _give_up(self, url: str, attempts: int, clock: _Clock, last: _Retryable, cut_short: bool) -> str:
        head = (f"{url}: no answer after {attempts} attempt{'s' if attempts != 1 else ''} in "
                f"{time.monotonic() - clock.started:.1f} s")
        seconds, option, words = self._first_token_limit()
        if last.kind == "deadline":
            return (f"{head}: no text yet when the {seconds:g} s {words} passed (the server is slow to start, "
                    f"sends no tokens, or trickles); raise --llm-option {option}=S")
        if last.kind == "refused":
            how = "connection refused (is the server running?)"
            fix = f"--llm-option retries=N and {option}=S wait longer for it to start"
        elif last.kind == "timeout":
            how = f"nothing within the {self.timeout:g} s read timeout"
            fix = f"raise --llm-option timeout=S (per read) or {option}=S (until the first token)"
        else:
            how, fix = str(last), f"--llm-option retries=N and {option}=S control how long it is retried"
        if cut_short:
            how += f"; the next retry would start past the {seconds:g} s {words}"
        return f"{head}: {how}; {fix}"

    def _once(self, opener: urllib.request.OpenerDirector, clock: _Clock, url: str, data: bytes, headers: dict,
              text_of: Any, acc: TextAccumulator, cancel: CancelToken | None = None) -> Completion:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        started = False
        try:
            with opener.open(request, timeout=clock.step()[0]) as response:  # closed on Cancelled too
                reason, usage = "length", {}
                for k, event in enumerate(_sse_events(response), 1):
                    check(cancel, f"streamed chunk {k}")
                    if "error" in event:
                        raise LLMError(f"{url}: the server answered an error: {_one_line(event['error'])}")
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        piece = text_of(choice)
                        if piece:
                            started = clock.streaming = True  # from now on the whole-call deadline applies
                            if not acc.add(piece):
                                return acc.finish(reason, n_prompt_tokens=int(usage.get("prompt_tokens", 0)))
                        if choice.get("finish_reason"):
                            reason = "stop" if choice["finish_reason"] == "stop" else "length"
                return acc.finish(reason, n_prompt_tokens=int(usage.get("prompt_tokens", 0) or 0))
        except urllib.error.HTTPError as e:
            try:
                detail = _one_line(e.read(300).decode("utf-8", "replace")) if e.fp else ""
            except (OSError, http.client.HTTPException):
                detail = ""
            if e.code in RETRY_STATUS:
                raise _Retryable("other", f"HTTP {e.code}") from e
            raise LLMError(f"{url}: HTTP {e.code} {e.reason}: {detail}") from e
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, bad status lines
            cause = e.reason if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException) else e
            deadline = isinstance(cause, _DeadlinePassed) or (isinstance(cause, TimeoutError) and clock.left() <= 0)
            if started:
                if deadline:
                    raise LLMError(f"{url}: the answer was still streaming when the {self.deadline:g} s deadline "
                                   f"passed ({len(acc.text)} characters so far); a slow server needs a longer "
                                   f"--llm-option deadline=S") from e
                if isinstance(cause, TimeoutError):
                    raise LLMError(f"{url}: the answer stopped: nothing for {self.timeout:g} s mid-answer "
                                   f"({len(acc.text)} characters so far); raise --llm-option timeout=S") from e
                raise LLMError(f"{url}: the connection broke mid-answer ({_one_line(cause)})") from e
            if deadline:
                raise _Retryable("deadline", "the deadline passed") from e
            if isinstance(cause, ConnectionRefusedError):
                raise _Retryable("refused", "connection refused") from e
            if isinstance(cause, TimeoutError):
                raise _Retryable("timeout", "timed out") from e
            raise _Retryable("other", f"{type(cause).__name__}: {_one_line(cause)}") from e


def _one_line(value: object) -> str:
    """Server-controlled text shortened to one line for an error message."""
    return " ".join(str(value).split())[:300]


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
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            raise LLMError(f"the server sent an event line longer than {MAX_LINE} bytes")
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
