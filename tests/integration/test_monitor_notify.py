"""A real `kubeline monitor` check hands its numbers to a real Pushgateway and its news to a
local webhook receiver (the champion and its data are test_monitor.py's fixtures)."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import test_monitor
from conftest import CliResult, free_port, running  # tests/conftest.py
from prometheus_client.parser import text_string_to_metric_families
from test_monitor import Champion, last_line

# test_monitor.py's fixtures, shared: the champion is trained once per module that uses it.
champion, env = test_monitor.champion, test_monitor.env

pytestmark = pytest.mark.integration

GATEWAY = "/usr/bin/prometheus-pushgateway"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    if not Path(GATEWAY).exists():
        pytest.fail(f"{GATEWAY} is missing: apt-get install prometheus-pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [GATEWAY, f"--web.listen-address=127.0.0.1:{port}"]  # no --persistence.file
    with running(
        args, env=dict(os.environ), cwd=tmp_path, log=tmp_path / "gw.log",
        ready=f"{url}/-/ready", timeout=30,
    ):  # fmt: skip
        yield url


def check(cli: Callable[..., CliResult], data: Path, env: Champion, out: Path) -> CliResult:
    """`kubeline monitor` on market data from the holdout's start, into ``out``."""
    return cli("monitor", "--current", data, "--since", env.holdout_start, "--out", out)


def pushed(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gateway's kubeline series, without the labels it adds (job, instance)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (
            s.name,
            tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("job", "instance"))),
        ): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("kubeline_monitor_") and s.labels.get("job") == "kubeline-monitor"
    }


def test_each_check_replaces_the_models_series_on_the_gateway(
    env: Champion, cli, tmp_path: Path, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELINE_PUSHGATEWAY_URL", gateway)
    ok = check(cli, env.clean, env, tmp_path / "a")
    assert ok.exit_code == 0 and last_line(ok.stdout) == "ok", ok.output
    first = json.loads((tmp_path / "a" / "summary.json").read_text())
    series = pushed(gateway)
    model = (("model", first["model_name"]), ("version", first["model_version"]))
    assert series[("kubeline_monitor_drifted_share", model)] == first["drifted_share"]
    assert series[("kubeline_monitor_rows", model)] == first["rows"]
    assert series[("kubeline_monitor_rmse", model)] == pytest.approx(first["rmse"])
    assert series[("kubeline_monitor_check_duration_seconds", model)] == first["seconds"]
    for feature, score in first["drift_scores"].items():
        assert series[("kubeline_monitor_drift_score", (("feature", feature), *model))] == (
            pytest.approx(score)
        )
    assert series[("kubeline_monitor_decision", (("decision", "ok"), *model))] == 1

    shifted = check(cli, env.shifted, env, tmp_path / "b")
    assert shifted.exit_code == 11, shifted.output
    second = json.loads((tmp_path / "b" / "summary.json").read_text())
    series = pushed(gateway)
    assert series[("kubeline_monitor_decision", (("decision", "ok"), *model))] == 0
    assert series[("kubeline_monitor_decision", (("decision", "decay"), *model))] == 1
    assert series[("kubeline_monitor_rmse", model)] == pytest.approx(second["rmse"])
    assert series[("kubeline_monitor_drifted_share", model)] == second["drifted_share"]
    # One group per model: the second check's series replaced the first's, none are left over.
    groups = {labels for name, labels in series if name == "kubeline_monitor_rows"}
    assert groups == {model}


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:  # keep the test's output clean
        pass


def test_the_webhook_hears_of_a_breaching_check_and_not_of_an_ok_one(
    env: Champion, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/services/T/B/token"
        monkeypatch.setenv("KUBELINE_MONITOR_WEBHOOK_URL", url)
        ok = check(cli, env.clean, env, tmp_path / "a")
        assert ok.exit_code == 0, ok.output
        assert Receiver.bodies == []
        bad = check(cli, env.shifted, env, tmp_path / "b")
        assert bad.exit_code == 11, bad.output
        assert "token" not in bad.output
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    [body] = Receiver.bodies
    assert body["text"].startswith(f"kubeline monitor: decay for {summary['model_name']}")
    assert summary["check_id"] in body["text"] and summary["reason"] in body["text"]
    assert summary["report"] in json.dumps(body["blocks"])


def test_the_textfile_holds_the_checks_numbers(
    env: Champion, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "textfile" / "kubeline.prom"
    monkeypatch.setenv("KUBELINE_MONITOR_TEXTFILE", str(target))
    done = check(cli, env.clean, env, tmp_path / "a")
    assert done.exit_code == 0, done.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(target.read_text())
        for s in family.samples
        if not s.labels.get("feature") and not s.labels.get("decision")
    }
    assert values["kubeline_monitor_rows"] == summary["rows"]
    assert values["kubeline_monitor_drifted_share"] == summary["drifted_share"]


def test_a_dead_gateway_leaves_the_check_and_its_exit_code_alone(
    env: Champion, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("KUBELINE_PUSHGATEWAY_URL", url)
    done = check(cli, env.clean, env, tmp_path / "a")
    assert done.exit_code == 0 and last_line(done.stdout) == "ok", done.output
    assert f"not sent to {url}" in done.stderr
    assert (tmp_path / "a" / "summary.json").exists()
