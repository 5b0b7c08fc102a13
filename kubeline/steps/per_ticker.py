"""The per-ticker pipeline's first step: one run config per ticker, the fan-out's items."""

from __future__ import annotations

from kubeline.steps.base import executor, registered_name, run_config


@executor
def configs(*, config: str, model_name: str = "") -> list[str]:
    """Each ticker's run config as YAML text (``kubeline.per_ticker``), in the config's order."""
    from kubeline.errors import ConfigError
    from kubeline.per_ticker import ticker_configs

    cfg = run_config(config)
    if not cfg.data.per_ticker:
        raise ConfigError(
            "this run config trains one model: data.per_ticker is not set",
            hint="run the kubeline-training pipeline, or set data.per_ticker: true and list "
            "data.tickers",
        )
    found = ticker_configs(cfg, registered_name(cfg, model_name))
    for ticker, ticker_config in found:
        print(f"{ticker}: registered as {ticker_config.model_name}", flush=True)
    return [ticker_config.to_yaml() for _, ticker_config in found]
