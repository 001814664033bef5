"""The OpenAI-compatible client against small servers on loopback: streaming, retries, timeouts, errors."""

from __future__ import annotations

import time

import pytest

from t2i.llm import LLMError, Message, SamplingSettings, open_llm, stream
from t2i.llm.openai_llm import OpenAICompatibleLLM

from .fake_openai_server import plain, slow, sse, status

SECRET = "sk-test-0123456789"


def test_streams_completion_and_sends_the_settings(serve, monkeypatch):
    monkeypatch.setenv("T2I_LLM_API_KEY", SECRET)
    s = serve(sse(["red", " circle", ", blue"]))
    llm = open_llm(s.url, options={"model": "tipo"})
    pieces = list(stream(lambda cb: llm.complete("tag:", SamplingSettings(top_k=60, min_p=0.1, seed=4), cb)))
    assert "".join(pieces) == "red circle, blue"
    path, body = s.bodies[0]
    assert path == "/v1/completions" and body["prompt"] == "tag:" and body["model"] == "tipo"
    assert body["top_k"] == 60 and body["min_p"] == 0.1 and body["seed"] == 4 and body["stream"] is True
    assert s.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(llm) and SECRET not in llm.name


def test_chat_and_stop_strings(serve):
    s = serve(sse(["one. ", "two", ". three"], chat=True))
    llm = OpenAICompatibleLLM(s.url)
    out = llm.chat([Message("user", "count")], SamplingSettings(stop=(". th",)))
    assert out.text == "one. two" and out.finish_reason == "stop"
    assert s.bodies[0][0] == "/v1/chat/completions" and s.bodies[0][1]["messages"][0]["content"] == "count"


def test_retries_busy_answers_then_succeeds(serve):
    s = serve(status(503), status(429), sse(["ok"]))
    out = OpenAICompatibleLLM(s.url, retries=2, backoff=0.01).complete("x", SamplingSettings())
    assert out.text == "ok" and len(s.bodies) == 3


def test_gives_up_after_the_retries_with_a_clear_error(serve):
    s = serve(status(503))
    with pytest.raises(LLMError, match="no answer after 2 attempts"):
        OpenAICompatibleLLM(s.url, retries=1, backoff=0.01).complete("x", SamplingSettings())


def test_timeout_is_retried_then_reported(serve):
    s = serve(slow(1.0))
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="no answer"):
        OpenAICompatibleLLM(s.url, timeout=0.2, retries=1, backoff=0.01).complete("x", SamplingSettings())
    assert time.monotonic() - t0 < 5


def test_client_errors_are_not_retried_and_never_show_the_key(serve):
    s = serve(status(401))
    llm = OpenAICompatibleLLM(s.url, api_key=SECRET, retries=3)
    with pytest.raises(LLMError, match="HTTP 401") as info:
        llm.complete("x", SamplingSettings())
    assert len(s.bodies) == 1 and SECRET not in str(info.value)


def test_garbage_answer_is_a_clear_error(serve):
    s = serve(plain)
    with pytest.raises(LLMError, match="not JSON"):
        OpenAICompatibleLLM(s.url).complete("x", SamplingSettings())


def test_nobody_listening_is_a_clear_error():
    with pytest.raises(LLMError, match="no answer"):
        OpenAICompatibleLLM("http://127.0.0.1:9/v1", retries=0, timeout=1).complete("x", SamplingSettings())


def test_bad_urls_are_refused():
    for url in ("ftp://x/v1", "http://user:pw@host/v1", "127.0.0.1:8080"):
        with pytest.raises(LLMError):
            OpenAICompatibleLLM(url)
