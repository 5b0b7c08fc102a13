"""Fixtures of the integration tests that talk to KFP: the contract server (``kfp_contract``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp_contract import Contract, ContractServer


@pytest.fixture
def kfp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own; kfp reads the context file's path once, at import."""
    import kfp.client.client

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    context = home / ".config" / "kfp" / "context.json"
    monkeypatch.setattr(kfp.client.client.Client, "_LOCAL_KFP_CONTEXT", str(context))
    return home


@pytest.fixture
def server(kfp_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractServer]:
    token = secrets.token_hex(16)  # made up per test
    running = ContractServer(token=token).start()
    monkeypatch.setenv("KUBELINE_KFP_HOST", running.url)
    monkeypatch.setenv("KUBELINE_KFP_TOKEN", token)
    monkeypatch.setenv("KUBELINE_KFP_POLL_SECONDS", "0.01")
    yield running
    running.stop()


@pytest.fixture
def kfp(server: ContractServer) -> Iterator[Contract]:
    """The server's state; at the end, no request was refused unless the test expected it."""
    yield server.contract
    assert server.contract.errors == [], server.contract.errors
