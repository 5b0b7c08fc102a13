"""One model per ticker: a run config with ``data.per_ticker`` split into one config per ticker.

Each ticker's config is the user's with ``data.tickers`` set to that ticker alone and
``model_name`` set to ``<name>-<ticker>``, so every ticker's model is a plain training run of
its own: validated, tuned, gated and registered as the training pipeline does for one model, and
retrained by a check with that same config. The per-ticker pipeline runs them in parallel.
"""

from __future__ import annotations

import re

from kubeline.runconfig import RunConfig

_NOT_IN_A_NAME = re.compile(r"[^a-z0-9]+")


def ticker_model_name(base: str, ticker: str) -> str:
    """``kubeline-returns`` and ``BRK.B`` -> ``kubeline-returns-brk-b``."""
    return f"{base}-{_NOT_IN_A_NAME.sub('-', ticker.lower()).strip('-')}"


def ticker_configs(config: RunConfig, base_name: str) -> list[tuple[str, RunConfig]]:
    """Each ticker of a per-ticker config with its own run config, in the config's order."""
    if not config.data.per_ticker or not config.data.tickers:
        return []
    names: dict[str, str] = {}
    found = []
    for ticker in config.data.tickers:
        name = ticker_model_name(base_name, ticker)
        if name in names:
            from kubeline.errors import ConfigError

            raise ConfigError(
                f"data.tickers: {names[name]} and {ticker} would both register {name}",
                hint="per-ticker model names are the lowercased tickers: list each once",
            )
        names[name] = ticker
        data = config.data.model_copy(update={"tickers": [ticker], "per_ticker": False})
        found.append((ticker, config.model_copy(update={"data": data, "model_name": name})))
    return found
