"""The shipped run configs load, and each says what its name promises."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeline.runconfig import RunConfig, load_run_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_run_config(path)
    assert RunConfig.from_yaml_text(config.to_yaml()) == config


def test_the_configs_folder_is_not_empty() -> None:
    assert {"default.yaml", "kaggle-volume.yaml", "per-stock.yaml"} <= {
        p.name for p in CONFIGS.glob("*.yaml")
    }


def test_default_yaml_is_exactly_the_defaults() -> None:
    assert load_run_config(CONFIGS / "default.yaml") == RunConfig()


def test_default_yaml_spells_out_every_top_level_key() -> None:
    keys = yaml.safe_load((CONFIGS / "default.yaml").read_text())
    assert list(keys) == list(RunConfig.model_fields)


def test_kaggle_volume_predicts_next_volume_with_a_degree_2_polynomial() -> None:
    config = load_run_config(CONFIGS / "kaggle-volume.yaml")
    assert config.model_name == "kubeline-volume"
    assert config.target == "next_volume" and config.target_kind == "level"
    assert config.features == ["volume_mean_30", "adj_close_median_30"]
    assert [m.name for m in config.models] == ["poly2"]


def test_per_stock_trains_on_one_ticker_under_its_own_name() -> None:
    config = load_run_config(CONFIGS / "per-stock.yaml")
    assert config.data.tickers is not None and len(config.data.tickers) == 1
    assert config.model_name and config.model_name != RunConfig().model_name


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_name_only_tickers_the_demo_data_has(path: Path) -> None:
    from kubeline.data.demo import DEMO_SEED, DEMO_TICKERS, DEMO_YEARS
    from kubeline.data.generate import generate

    wanted = load_run_config(path).data.tickers or []
    demo = set(generate(DEMO_TICKERS, DEMO_YEARS, DEMO_SEED)["ticker"].unique().to_list())
    assert set(wanted) <= demo, f"{path.name} names {sorted(set(wanted) - demo)}"
