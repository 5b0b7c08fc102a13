"""A check's Prometheus metrics and webhook message, built from a summary (no servers)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubeline.monitor import prometheus, webhook
from kubeline.monitor.summary import CheckSummary
from kubeline.settings import Settings

HOOK = "https://hooks.slack.com/services/T000/B000/sEcReTtOkEn"


def summary(**changes: object) -> CheckSummary:
    base = CheckSummary(
        decision="drift", reason="67% of the features drifted: volatility_20 (0.41), ret_5 (0.22)",
        exit_code=10, checked_at="2026-12-03T06:00:00+00:00", model_name="spy-returns",
        model_version="3", mlflow_run_id="r1", pipeline_run_id=None, source="inference log",
        window_start="2026-12-02", window_end="2026-12-03", rows=500, drift_rows=500,
        sampled=False, reference_rows=2000, drift_method="wasserstein", drift_threshold=0.1,
        drifted_share=2 / 3, drifted_features=["volatility_20", "ret_5"],
        drift_scores={"volatility_20": 0.41, "ret_5": 0.22, "ret_1": 0.03},
        prediction_drift=0.3, truth_rows=0, rmse=None, mae=None, holdout_rmse=None,
        report="/checks/20261203T060000Z-spy-returns-v3/report.html", seconds=4.5,
        check_id="20261203T060000Z-spy-returns-v3",
    )  # fmt: skip
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def samples(check: CheckSummary) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(prometheus.registry_for(check)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_number_of_the_check_is_a_gauge_labelled_with_model_and_version() -> None:
    got = samples(summary())
    model = (("model", "spy-returns"), ("version", "3"))
    assert got[("kubeline_monitor_drifted_share", model)] == pytest.approx(2 / 3)
    assert got[("kubeline_monitor_drift_score", (("feature", "ret_1"), *model))] == 0.03
    assert got[("kubeline_monitor_drift_score", (("feature", "volatility_20"), *model))] == 0.41
    assert got[("kubeline_monitor_prediction_drift", model)] == 0.3
    assert got[("kubeline_monitor_rows", model)] == 500
    assert got[("kubeline_monitor_check_duration_seconds", model)] == 4.5
    assert got[("kubeline_monitor_last_check_timestamp_seconds", model)] == 1796277600
    decisions = {
        dict(labels)["decision"]: value
        for (name, labels), value in got.items()
        if name == "kubeline_monitor_decision"
    }
    assert decisions == {"ok": 0, "drift": 1, "decay": 0, "insufficient-data": 0}
    # No ground truth yet: no error series rather than a made-up zero.
    assert not any(name in ("kubeline_monitor_rmse", "kubeline_monitor_mae") for name, _ in got)


def test_window_errors_are_gauges_once_known() -> None:
    got = samples(summary(rmse=0.012, mae=0.009, truth_rows=300))
    model = (("model", "spy-returns"), ("version", "3"))
    assert got[("kubeline_monitor_rmse", model)] == 0.012
    assert got[("kubeline_monitor_mae", model)] == 0.009


def test_the_textfile_parses_and_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "collector" / "kubeline.prom"
    settings = Settings(state_dir=tmp_path, monitor_textfile=target)
    assert prometheus.publish(summary(), settings) is None
    families = {f.name for f in text_string_to_metric_families(target.read_text())}
    assert {"kubeline_monitor_drifted_share", "kubeline_monitor_decision"} <= families
    assert [p.name for p in target.parent.iterdir()] == ["kubeline.prom"]  # no temp file left


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_gateway_is_a_warning_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    warning = prometheus.publish(summary(), Settings(state_dir=tmp_path, pushgateway_url=url))
    assert warning is not None and url in warning and "refused" in warning
    assert warning in capsys.readouterr().err


def test_the_message_says_decision_model_reason_top_features_report_and_check() -> None:
    body = webhook.message(summary())
    text = json.dumps(body)
    assert body["text"].startswith("kubeline monitor: drift for spy-returns v3")
    for expected in (
        "volatility_20 (0.41), ret_5 (0.22)",
        "/checks/20261203T060000Z-spy-returns-v3/report.html",
        "Check: 20261203T060000Z-spy-returns-v3",
        "*Reason:* 67% of the features drifted",
        "*Model:* spy-returns version 3",
    ):
        assert expected in text, expected
    assert "ret_1" not in body["text"]  # not drifted: not a top drifted feature
    assert body["blocks"][0]["type"] == "header"


def test_a_pending_retraining_is_in_the_message_with_the_command_that_approves_it() -> None:
    note = "retrain: pending; approve with `kubeline retrain --approve 20261203T060000Z-x-v3`"
    body = webhook.message(summary(retrain="pending", retrain_note=note))
    assert body["text"].endswith(note)
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert "*Retraining:* pending; approve with `kubeline retrain --approve " in "".join(fields)
    assert "Retraining" not in json.dumps(webhook.message(summary()))


def test_ok_and_insufficient_data_post_nothing(tmp_path: Path) -> None:
    # A closed port: a post would be a warning, so None means nothing was sent.
    settings = Settings(state_dir=tmp_path, monitor_webhook_url=f"http://127.0.0.1:{closed_port()}")
    assert webhook.notify(summary(decision="ok"), settings) is None
    assert webhook.notify(summary(decision="insufficient-data"), settings) is None
    assert webhook.notify(summary(decision="decay"), settings) is not None


def test_a_failed_post_is_a_warning_that_never_shows_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        state_dir=tmp_path, monitor_webhook_url=f"http://127.0.0.1:{closed_port()}/sEcReT"
    )
    warning = webhook.notify(summary(), settings)
    assert warning is not None and "KUBELINE_MONITOR_WEBHOOK_URL" in warning
    assert "sEcReT" not in warning + capsys.readouterr().err


def test_kubeline_config_masks_the_webhook(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_MONITOR_WEBHOOK_URL", HOOK)
    done = cli("config")
    assert done.exit_code == 0, done.output
    assert "sEcReTtOkEn" not in done.output and "monitor_webhook_url" in done.output


def test_a_bad_webhook_url_is_named_but_not_shown(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_MONITOR_WEBHOOK_URL", "hooks.slack.com/sEcReTtOkEn")
    done = cli("config")
    assert done.exit_code == 2 and "KUBELINE_MONITOR_WEBHOOK_URL" in done.output
    assert "sEcReTtOkEn" not in done.output
