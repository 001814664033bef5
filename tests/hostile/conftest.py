"""Fixtures for the hostile-input suite: the CLI run in-process on a fake backend, crafted PNGs, canaries,
and a loopback HTTP server that records every request it gets."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from t2i.metadata import build_pnginfo
from t2i.registry import Licence, ModelRegistry, ModelSpec
from t2i.types import GenerationRequest

from ..fake_backend import fake_registry

FAKE = ModelSpec("fake", "sdxl", "image", "test/fake", Licence("Test", "", "tests only"), "noise for tests",
                 {"steps": 2, "guidance": 1.5, "width": 16, "height": 16, "sampler": "euler", "negative_prompt": ""},
                 max_pixels=64 * 64)



@pytest.fixture
def registry() -> ModelRegistry:
    return fake_registry(FAKE)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def record(**request: Any) -> dict:
    """A t2i metadata record as t2i writes it, for a request of the fake model with `request`'s fields."""
    data = GenerationRequest(prompt="a red circle", model="fake", seed=1, steps=2).to_dict()
    for key, value in request.items():
        data[key] = {**data[key], **value} if key in ("presample", "compose") else value
    req = GenerationRequest.from_dict(data)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=build_pnginfo(req, 1, 0, req.prompt, ""))
    buffer.seek(0)
    with Image.open(buffer) as im:
        return json.loads(im.info["t2i"])


def crafted_png(path: Path, rec: dict | None = None, parameters: str | None = None) -> Path:
    """A PNG whose metadata chunks say whatever the test wants (no validation on the way in)."""
    info = PngInfo()
    if parameters is not None:
        info.add_itxt("parameters", parameters)
    if rec is not None:
        info.add_itxt("t2i", json.dumps(rec))
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, pnginfo=info)
    return path


class Canary:
    """A pickle whose payload would create `self.path` when unpickled (it must never exist)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "canary-touched"

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


class Recorder:
    """A loopback HTTP server answering every request with `status`, recording (method, path, headers)."""

    def __init__(self, status: int = 200, body: bytes = b"{}") -> None:
        seen: list[tuple[str, str, dict[str, str]]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as r:
        yield r
