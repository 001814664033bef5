"""The OpenAI-compatible client against hostile loopback servers: refusing, silent, trickling, redirecting.

Every call here has a start deadline or deadline of 1-2 s; the bounds on elapsed time are generous (the
deadline + about 1 s).  `start_deadline` runs until the first text token, `deadline` over the whole call.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from t2i.backends.llm import load_llm
from t2i.llm import LLMError, SamplingSettings
from t2i.llm.openai_llm import (
    DEFAULT_BACKOFF,
    DEFAULT_DEADLINE,
    DEFAULT_RETRIES,
    DEFAULT_START_DEADLINE,
    DEFAULT_TIMEOUT,
    MAX_BACKOFF,
    MAX_RETRIES,
    backoff_seconds,
)

SECRET = "sk-hostile-0123456789"
TICK = 0.25  # seconds between trickled bytes
MAX_TICKS = 40  # a trickling handler stops after this many writes (10 s) even if nobody stops it


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # a proxy from the environment would take these requests off loopback
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


class Server:
    """A loopback HTTP server running `behaviour(handler, stop)` for every request; records what arrives."""

    def __init__(self, behaviour):
        self.requests: list[tuple[str, str, dict]] = []
        self.connections = 0
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers)))
                try:
                    behaviour(self, outer.stop)
                except OSError:  # the client hung up
                    pass

            do_GET = do_POST = _any

        class Counting(ThreadingHTTPServer):
            def verify_request(self, request, client_address):
                outer.connections += 1
                return True

        self.httpd = Counting(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()  # joins the handler threads, which end within one TICK of `stop`
        self.thread.join(5)


@pytest.fixture
def serve(started):
    return lambda behaviour: started(Server(behaviour))


def event_stream_headers(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    handler.wfile.flush()


def answer(handler, stop):
    event_stream_headers(handler)
    for piece in ("a red", " circle"):
        handler.wfile.write(f"data: {json.dumps({'choices': [{'text': piece}]})}\n\n".encode())
    end = {"choices": [{"text": "", "finish_reason": "stop"}]}
    handler.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())


def token(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'text': text}]})}\n\n".encode()


def trickle(unit: bytes, headers: bool = True, tick: float = TICK, ticks: int = MAX_TICKS, done: bool = False):
    """Writes `unit` every `tick` seconds, `ticks` times (bounded by `stop`), then [DONE] if `done`."""
    def run(handler, stop):
        if headers:
            event_stream_headers(handler)
        else:  # a status line, then a header line that never ends
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(ticks):
            if stop.wait(tick):
                return
            handler.wfile.write(unit)
            handler.wfile.flush()
        if done:
            handler.wfile.write(b"data: [DONE]\n\n")
    return run


def busy(handler, stop):
    handler.send_response(503)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def redirect(code: int, target: str):
    def run(handler, stop):
        handler.send_response(code)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return run


def client(url, **kw):
    return load_llm(url, options=kw)


def call(llm):
    return llm.complete("tag:", SamplingSettings(max_tokens=16))


# ---------------------------------------------------------------------------- failing servers


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("retries", [3, 10])
def test_refused_fails_within_the_start_deadline_and_names_the_options(closed_port, retries):
    llm = client(f"http://127.0.0.1:{closed_port}/v1", retries=retries, start_deadline=1.5, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(LLMError) as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    message = str(info.value)
    assert "connection refused" in message and "--llm-option retries=N and start_deadline=S" in message
    assert "\n" not in message


def test_a_server_that_keeps_failing_fails_within_the_start_deadline(serve):
    s = serve(busy)
    llm = client(s.url, retries=MAX_RETRIES, start_deadline=1.5, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"HTTP 503; the next retry would start past the 1\.5 s start deadline") as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    assert "--llm-option retries=N and start_deadline=S" in str(info.value)
    assert 2 <= len(s.requests) <= 3  # back-off 0.5 s, then 1 s; the next one, 2 s, would pass the deadline


def test_the_smaller_deadline_applies_before_the_first_token(serve):
    s = serve(trickle(b": ping\n\n"))
    llm = client(s.url, timeout=1, start_deadline=5, deadline=1.5)
    assert (llm.start_deadline, llm.deadline) == (5.0, 1.5)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"no text yet when the 1\.5 s deadline passed") as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    assert "--llm-option deadline=S" in str(info.value) and "start_deadline" not in str(info.value)


@pytest.fixture
def hang_up():
    """A listening socket whose thread accepts and closes every connection at once."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(0.1)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield lsock.getsockname()[1]
    stop.set()
    thread.join(5)
    lsock.close()


def test_a_server_that_hangs_up_fails_within_the_start_deadline(hang_up):
    llm = client(f"http://127.0.0.1:{hang_up}/v1", retries=3, start_deadline=1.5, timeout=1)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="no answer after") as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    assert "--llm-option retries=N" in str(info.value)


@pytest.fixture
def silent():
    """Listens (the kernel accepts connections) but never reads or answers."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    yield lsock.getsockname()[1]
    lsock.close()


def test_a_server_that_never_answers_fails_within_the_start_deadline(silent):
    llm = client(f"http://127.0.0.1:{silent}/v1", timeout=0.5, start_deadline=1.5)
    t0 = time.monotonic()
    with pytest.raises(LLMError) as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    message = str(info.value)
    assert "nothing within the 0.5 s read timeout" in message or "1.5 s start deadline passed" in message
    assert "--llm-option" in message and "start_deadline=S" in message


@pytest.mark.parametrize("behaviour", [
    trickle(b"d"),  # one byte at a time of a line that never ends
    trickle(b": ping\n\n"),  # whole comment lines, each well within the timeout
    trickle(token("")),  # whole events, but without text
    trickle(b"a", headers=False),  # a header line that never ends
], ids=["bytes", "lines", "empty-events", "headers"])
def test_a_trickling_server_without_tokens_is_stopped_at_the_start_deadline(serve, behaviour):
    s = serve(behaviour)
    llm = client(s.url, timeout=1, start_deadline=1.5, retries=2)
    assert llm.deadline == DEFAULT_DEADLINE
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"no answer after 1 attempt in .*the 1\.5 s start deadline passed") as info:
        call(llm)
    assert time.monotonic() - t0 < 2.5
    assert "--llm-option start_deadline=S" in str(info.value)
    assert len(s.requests) == 1  # nothing is retried once the deadline passed


def test_trickled_tokens_are_stopped_at_the_deadline(serve):
    s = serve(trickle(token("a"), tick=0.3))  # one token every 0.3 s, never finishing
    llm = client(s.url, timeout=1, deadline=1.5)
    assert llm.start_deadline == DEFAULT_START_DEADLINE
    t0 = time.monotonic()
    with pytest.raises(LLMError, match=r"still streaming when the 1\.5 s deadline passed \(\d+ characters") as info:
        llm.complete("tag:", SamplingSettings(max_tokens=1000))
    assert time.monotonic() - t0 < 2.5
    assert "--llm-option deadline=S" in str(info.value) and "start_deadline" not in str(info.value)
    assert len(s.requests) == 1


def test_a_steady_stream_may_outlast_the_start_deadline(serve):
    s = serve(trickle(token("a"), tick=0.2, ticks=8, done=True))  # tokens for 1.6 s, then [DONE]
    llm = client(s.url, timeout=1, start_deadline=0.5)
    t0 = time.monotonic()
    out = llm.complete("tag:", SamplingSettings(max_tokens=1000))
    assert 1.4 < time.monotonic() - t0 < 2.6
    assert out.text == "a" * 8 and len(s.requests) == 1


# ---------------------------------------------------------------------------- redirects and the key


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_refused_and_the_key_stays_home(serve, monkeypatch, code):
    monkeypatch.setenv("T2I_LLM_API_KEY", SECRET)
    other = serve(answer)
    first = serve(redirect(code, f"http://127.0.0.1:{other.port}/v1/completions"))
    llm = client(first.url, start_deadline=2)
    with pytest.raises(LLMError, match=rf"HTTP {code} .*redirects are not followed.*give the final URL") as info:
        call(llm)
    assert SECRET not in str(info.value)
    assert len(first.requests) == 1 and first.requests[0][2]["Authorization"] == f"Bearer {SECRET}"
    assert other.connections == 0 and other.requests == []


# ---------------------------------------------------------------------------- a good server still works


def test_a_proper_answer_arrives_within_the_deadline(serve, monkeypatch):
    monkeypatch.setenv("T2I_LLM_API_KEY", SECRET)
    s = serve(answer)
    out = call(client(s.url, timeout=1, start_deadline=1.5, deadline=2))
    assert out.text == "a red circle" and out.finish_reason == "stop"
    assert len(s.requests) == 1
    method, path, headers = s.requests[0]
    assert (method, path, headers["Authorization"]) == ("POST", "/v1/completions", f"Bearer {SECRET}")


# ---------------------------------------------------------------------------- defaults and option values


def test_defaults_fail_within_thirty_seconds():
    # a dead server (refusing, silent, failing, trickling) fails within DEFAULT_START_DEADLINE
    assert DEFAULT_TIMEOUT <= 30 and DEFAULT_START_DEADLINE <= 30
    sleeps = [backoff_seconds(DEFAULT_BACKOFF, r) for r in range(1, DEFAULT_RETRIES + 1)]
    assert sum(sleeps) < DEFAULT_START_DEADLINE
    assert max(backoff_seconds(DEFAULT_BACKOFF, r) for r in range(1, MAX_RETRIES + 1)) == MAX_BACKOFF
    # a working server may stream for minutes (a composer writing ~1,000 tokens on a CPU)
    assert DEFAULT_DEADLINE >= 300
    llm = client("http://127.0.0.1:9/v1")
    assert (llm.timeout, llm.start_deadline, llm.deadline, llm.retries) == (
        DEFAULT_TIMEOUT, DEFAULT_START_DEADLINE, DEFAULT_DEADLINE, DEFAULT_RETRIES)


@pytest.mark.parametrize("option, value", [
    *[(name, v) for name in ("timeout", "start_deadline", "deadline")
      for v in ("10", True, None, [1], math.nan, math.inf, -math.inf, -1, 0, 3601)],
    *[("retries", v) for v in ("2", True, None, 2.0, math.nan, -1, MAX_RETRIES + 1, 40)],
])
def test_bad_option_values_are_refused_by_name(option, value):
    with pytest.raises(LLMError, match=rf"^LLM option {option} must be .*--llm-option {option}="):
        load_llm("http://127.0.0.1:9/v1", options={option: value})


def test_option_bounds_are_accepted():
    llm = load_llm("http://127.0.0.1:9/v1", options={"timeout": 3600, "start_deadline": 3600, "deadline": 0.5,
                                                    "retries": MAX_RETRIES})
    assert (llm.timeout, llm.start_deadline, llm.deadline, llm.retries) == (3600.0, 3600.0, 0.5, MAX_RETRIES)


@pytest.mark.parametrize("option, value", [
    *[(name, v) for name in ("n_ctx", "n_threads", "n_gpu_layers")
      for v in ("2048", "many", True, 2.0, math.nan, [1], 1 << 40)],
    ("n_ctx", 0), ("n_ctx", -1), ("n_threads", 0), ("n_gpu_layers", -2),
])
def test_bad_llamacpp_option_values_are_refused_by_name(option, value):
    # checked before anything is resolved, downloaded or loaded
    with pytest.raises(LLMError, match=rf"^LLM option {option} must be a whole number .*--llm-option {option}=N"):
        load_llm("no-such-model.gguf", options={"backend": "llama.cpp", option: value})
