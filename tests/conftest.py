"""Test-wide settings: never touch a hub, keep t2i's state inside the test's temporary folder."""

import os

import pytest

# huggingface_hub reads this when it is first imported, so set it before any test imports it.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("T2I_HOME", str(tmp_path_factory.mktemp("t2i-home")))


@pytest.fixture
def run(capsys, registry):
    """The `t2i` CLI called in-process with the test's `registry` fixture -> (exit code, stdout, stderr)."""
    from t2i.cli import main

    def _run(*argv: str, reg=registry) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv), registry=reg)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def started():
    """`started(server)` returns `server` and closes it after the test (anything with a close())."""
    servers = []
    yield lambda server: servers.append(server) or server
    for server in servers:
        server.close()


@pytest.fixture
def serve(started):
    """`serve(*behaviours)` starts a scripted OpenAI-compatible server (tests/fake_openai_server.py), closed
    after the test."""
    from tests.fake_openai_server import Server

    return lambda *behaviours: started(Server(behaviours))
