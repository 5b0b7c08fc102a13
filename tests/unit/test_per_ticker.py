"""A per-ticker run config split into one run config per ticker, and refused where it is wrong."""

from __future__ import annotations

import pytest

from kubeline.errors import ConfigError
from kubeline.per_ticker import ticker_configs, ticker_model_name
from kubeline.runconfig import RunConfig
from kubeline.steps import per_ticker as step
from kubeline.steps import train as train_step

TEXT = """
model_name: stocks
data: {tickers: [AMZO, BRK.B], per_ticker: true, min_rows: 300}
models: [{name: ridge, params: {alpha: [1.0]}}]
gate: {max_p_value: 0.1}
"""


def test_each_ticker_gets_the_users_config_for_that_ticker_alone_under_its_own_name() -> None:
    cfg = RunConfig.from_yaml_text(TEXT)
    found = ticker_configs(cfg, "stocks")
    assert [(t, c.model_name, c.data.tickers) for t, c in found] == [
        ("AMZO", "stocks-amzo", ["AMZO"]),
        ("BRK.B", "stocks-brk-b", ["BRK.B"]),
    ]
    for _, ticker_config in found:
        assert ticker_config.data.per_ticker is False  # a plain training run of its own
        assert ticker_config.data.min_rows == 300 and ticker_config.gate.max_p_value == 0.1
        assert ticker_config.models == cfg.models
        # What the fan-out hands each iteration: YAML text that loads back to the same config.
        assert RunConfig.from_yaml_text(ticker_config.to_yaml()) == ticker_config


def test_the_step_names_each_model_from_the_pipeline_input_else_the_config() -> None:
    texts = step.configs(config=TEXT, model_name="")
    assert [RunConfig.from_yaml_text(t).model_name for t in texts] == [
        "stocks-amzo",
        "stocks-brk-b",
    ]
    texts = step.configs(config=TEXT, model_name="team")
    assert [RunConfig.from_yaml_text(t).model_name for t in texts] == ["team-amzo", "team-brk-b"]


def test_per_ticker_without_listed_tickers_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data.*per_ticker needs the tickers listed"):
        RunConfig.from_yaml_text("data: {per_ticker: true}")


def test_two_tickers_that_would_share_a_model_name_are_refused() -> None:
    cfg = RunConfig.from_yaml_text("data: {tickers: [BRK.B, BRK-B], per_ticker: true}")
    with pytest.raises(ConfigError, match=r"BRK\.B and BRK-B would both register x-brk-b"):
        ticker_configs(cfg, "x")


def test_each_pipeline_refuses_the_other_kind_of_config() -> None:
    with pytest.raises(ConfigError, match=r"trains one model: data\.per_ticker is not set"):
        step.configs(config="", model_name="")
    with pytest.raises(ConfigError, match=r"one model per ticker \(data.per_ticker\)") as err:
        train_step.candidates(config=TEXT)
    assert "kubeline-training-per-ticker" in err.value.hint


@pytest.mark.parametrize(
    ("ticker", "name"), [("AMZO", "m-amzo"), ("brk.b", "m-brk-b"), ("^GSPC", "m-gspc")]
)
def test_model_names_are_the_lowercased_ticker(ticker: str, name: str) -> None:
    assert ticker_model_name("m", ticker) == name


def test_a_check_of_one_tickers_model_retrains_with_that_tickers_config_alone() -> None:
    from kubeline.monitor.loop import model_config_text
    from kubeline.settings import Settings

    settings = Settings()
    text = model_config_text(TEXT, "stocks-brk-b", settings)
    config = RunConfig.from_yaml_text(text)
    assert config.model_name == "stocks-brk-b" and config.data.tickers == ["BRK.B"]
    assert config.data.per_ticker is False  # the training pipeline runs it
    assert model_config_text("seed: 3\n", "anything", settings) == "seed: 3\n"  # one model: as is
    with pytest.raises(ConfigError, match="none of its tickers' models is stocks"):
        model_config_text(TEXT, "stocks", settings)
