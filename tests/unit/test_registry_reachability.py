import socket
import time

import pytest

from kubeline.errors import RegistryError
from kubeline.registry import check_reachable
from kubeline.settings import Settings


def test_an_unreachable_tracking_server_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port} does not answer"):
        check_reachable(Settings())
    assert time.monotonic() - started < 10


def test_a_local_store_needs_no_check() -> None:
    check_reachable(Settings())  # sqlite: nothing to reach
