"""Cancelling a generation with a CancelToken set from another thread: every backend stops within one token
(or streamed chunk) and raises Cancelled; a token set before the call raises before any token."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from t2i.cancel import Cancelled, CancelToken
from t2i.llm import Message, SamplingSettings, open_llm
from t2i.llm.llamacpp_llm import LlamaCppLLM
from t2i.llm.openai_llm import OpenAICompatibleLLM

from .fake_openai_server import status
from .tiny_llm import make_tiny_llama


def cancel_on_first_piece(token: CancelToken):
    """(on_token, pieces): on the first piece another thread cancels `token`, and the callback returns only
    once it has, so the backend's next step sees a set token."""
    pieces: list[str] = []
    first = threading.Event()

    def canceller() -> None:
        if first.wait(30):
            token.cancel("stopped by the test")

    thread = threading.Thread(target=canceller, daemon=True)
    thread.start()

    def on_token(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 1:
            first.set()
            thread.join(30)

    return on_token, pieces


# ---------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return open_llm(make_tiny_llama(tmp_path_factory.mktemp("llm") / "tiny"), options={"device": "cpu"})


LONG = SamplingSettings(max_tokens=40, temperature=1.5, seed=5)


def test_transformers_stops_within_one_token_of_a_cancel_from_another_thread(tiny):
    whole = tiny.complete("tag:", LONG)
    assert whole.n_tokens > 8  # without the cancel it runs on
    token = CancelToken()
    on_token, pieces = cancel_on_first_piece(token)
    steps: list[int] = []  # model forwards: the prompt's, then one per token
    at_cancel: list[int] = []
    hook = tiny.model.register_forward_pre_hook(lambda module, args: steps.append(1))
    try:
        def first_piece(piece: str) -> None:
            on_token(piece)
            at_cancel.append(len(steps))

        with pytest.raises(Cancelled, match=r"cancelled at token \d+ of at most 40: stopped by the test") as e:
            tiny.complete("tag:", LONG, first_piece, cancel=token)
    finally:
        hook.remove()
    assert len(pieces) == 1 and whole.text.startswith(pieces[0])
    # after the cancel only the forward already under way ran; the next token was never sampled
    assert len(steps) == at_cancel[0] + 1
    assert int(re.search(r"token (\d+)", str(e.value)).group(1)) == at_cancel[0] + 1


def test_transformers_with_a_token_set_before_the_call_runs_no_model_step(tiny):
    calls: list[int] = []
    hook = tiny.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        token = CancelToken()
        token.cancel()
        pieces: list[str] = []
        with pytest.raises(Cancelled, match="at the prompt"):
            tiny.complete("tag:", LONG, pieces.append, cancel=token)
        with pytest.raises(Cancelled):
            tiny.chat([Message("user", "draw a circle")], LONG, pieces.append, cancel=token)
        assert calls == [] and pieces == []
        assert tiny.complete("tag:", LONG, cancel=CancelToken()).text == tiny.complete("tag:", LONG).text
    finally:
        hook.remove()


# ---------------------------------------------------------------------------- OpenAI-compatible HTTP


def endless(written: list[int], n: int = 400, pause: float = 0.01):
    """A server behaviour: streams up to n pieces, a little apart; records how many it wrote before the
    client went away (or n)."""

    def run(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        sent = 0
        try:
            while sent < n:
                handler.wfile.write(f"data: {json.dumps({'choices': [{'text': f' w{sent}'}]})}\n\n".encode())
                handler.wfile.flush()
                sent += 1
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        written.append(sent)

    return run


def test_openai_client_stops_at_the_next_chunk_and_closes_the_connection(serve):
    written: list[int] = []
    s = serve(endless(written))
    token = CancelToken()
    on_token, pieces = cancel_on_first_piece(token)
    with pytest.raises(Cancelled, match="cancelled at streamed chunk 2: stopped by the test"):
        OpenAICompatibleLLM(s.url).complete("x", SamplingSettings(max_tokens=400), on_token, cancel=token)
    assert pieces == [" w0"]
    deadline = time.monotonic() + 10
    while not written and time.monotonic() < deadline:  # the server notices the closed connection
        time.sleep(0.02)
    assert written and written[0] < 400


def test_openai_client_with_a_token_set_before_the_call_sends_nothing(serve):
    s = serve(endless([]))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled, match="at the request"):
        OpenAICompatibleLLM(s.url).complete("x", SamplingSettings(), cancel=token)
    assert s.bodies == []


def test_openai_client_cancelled_during_a_back_off_sleep(serve):
    s = serve(status(503))
    llm = OpenAICompatibleLLM(s.url, retries=3, backoff=5.0)
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="back-off sleep"):
        llm.complete("x", SamplingSettings(), cancel=token)
    assert time.monotonic() - started < 2.0 and len(s.bodies) == 1  # not the 5 s sleep, and no retry


# ---------------------------------------------------------------------------- llama.cpp (its stream loop)


class FakeLlama:
    """llama_cpp.Llama's streaming surface: a chunk is generated when the stream is asked for one."""

    def __init__(self) -> None:
        self.generated = 0
        self.closed = False

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = True) -> list[int]:
        return list(range(len(text.split())))

    def n_ctx(self) -> int:
        return 512

    def create_completion(self, prompt: str, stream: bool = True, **kwargs):
        def chunks():
            try:
                for k in range(kwargs["max_tokens"]):
                    self.generated += 1
                    yield {"choices": [{"text": f" c{k}", "finish_reason": None}]}
            finally:
                self.closed = True

        return chunks()


def test_llamacpp_stream_loop_stops_within_one_chunk():
    fake = FakeLlama()
    llm = LlamaCppLLM(fake, "fake")
    token = CancelToken()
    on_token, pieces = cancel_on_first_piece(token)
    with pytest.raises(Cancelled, match="cancelled at chunk 2: stopped by the test"):
        llm.complete("tag:", SamplingSettings(max_tokens=100), on_token, cancel=token)
    assert pieces == [" c0"] and fake.generated == 2 and fake.closed  # llama.cpp stopped with the stream
    ahead = CancelToken()
    ahead.cancel()
    idle = FakeLlama()
    with pytest.raises(Cancelled, match="at the prompt"):
        LlamaCppLLM(idle, "fake").complete("tag:", SamplingSettings(max_tokens=100), cancel=ahead)
    assert idle.generated == 0
