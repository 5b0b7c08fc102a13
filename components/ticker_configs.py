from kubeline.components.image import kubeline_component


@kubeline_component
def ticker_configs(config: str, model_name: str) -> list[str]:
    """Split a per-ticker run config into one run config per ticker: the fan-out's items.

    Args:
        config: The run config as YAML text, not a path, with data.per_ticker and data.tickers.
        model_name: The base registered name ("" = the config's, else the setting): each
            ticker's model is registered as <name>-<ticker>.

    Returns:
        Output: One run config (YAML text) per ticker: that ticker only, its own model name.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import per_ticker as step

    require_cluster_settings()
    return step.configs(config=config, model_name=model_name)
