"""The per-ticker training pipeline: one model per ticker of the run config, in parallel.

ingest -> ticker_configs -> ParallelFor over the tickers: validate -> features -> train_all ->
evaluate -> register, each iteration with its ticker's own run config (``kubeline.per_ticker``:
that ticker only, registered as ``<name>-<ticker>``). Within a ticker the candidates are tuned in
one task: kfp.local (2.17) resolves a nested ParallelFor's inputs wrongly (an outer loop item
reaches the inner tasks as the inner item), and a ticker's data is small, so the parallelism is
across tickers.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent
from kubeline.components import features, ingest, ticker_configs, train_all, validate
from kubeline.components.docs import one_line_entries
from kubeline.pipelines.cluster import Platform, on_platform
from kubeline.pipelines.training import evaluate_and_register

PIPELINE_NAME = "kubeline-training-per-ticker"
# At most this many tickers train at once: each task fits with one native thread.
MAX_PARALLEL_TICKERS = 8


class PerTickerOutputs(NamedTuple):
    model_names: list[str]
    model_versions: list[str]
    aliases: list[str]
    reasons: list[str]


def training_per_ticker_pipeline(platform: Platform) -> GraphComponent:
    """The per-ticker training pipeline, every task on ``platform``."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, evaluate and register one next-bar model per ticker of the run "
        "config (data.per_ticker), in parallel; each becomes its own model's champion only if "
        "it beats the naive baseline and that model's current champion.",
    )
    @one_line_entries
    def training_per_ticker(
        data: str,
        data_version: str = "",
        config: str = "",
        model_name: str = "",
        min_improvement: float = -1.0,
        git_revision: str = "",
        triggered_by: str = "",
    ) -> PerTickerOutputs:
        """Run the training lifecycle once per ticker.

        Args:
            data: Local path or s3:// prefix of the raw OHLCV files (any supported layout).
            data_version: What identifies the data behind ``data``: ingest is served from
                KFP's cache for the same location and version; ``kubeline run`` sets it to a
                fingerprint of the files.
            config: The run config as YAML text, not a path, with data.per_ticker: true and the
                tickers in data.tickers (e.g. configs/per-ticker.yaml).
            model_name: The base registered name; each ticker's model is <name>-<ticker>. "" =
                the config's, else the KUBELINE_MODEL_NAME setting.
            min_improvement: Margin each model must beat the baseline and its champion by;
                negative (the default) = the config's ``gate.min_improvement``.
            git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
            triggered_by: The monitoring check that started this run, tagged on every
                version; "" = none.

        Returns:
            model_names: Each ticker's registered model, in the config's ticker order.
            model_versions: The version each registered, in the same order.
            aliases: "champion" where that version was promoted, else "".
            reasons: Why each was promoted or not.
        """
        ingested = ingest(data=data, data_version=data_version)
        listed = ticker_configs(config=config, model_name=model_name)
        with dsl.ParallelFor(listed.output, parallelism=MAX_PARALLEL_TICKERS) as ticker_config:
            checked = validate(raw=ingested.outputs["raw"], config=ticker_config)
            table = features(snapshot=checked.outputs["snapshot"], config=ticker_config)
            trained = train_all(table=table.outputs["table"], config=ticker_config)
            trained.set_cpu_limit("1").set_memory_limit("4G")
            evaluated, registered = evaluate_and_register(
                model=trained.outputs["model"],
                table=table.outputs["table"],
                snapshot=checked.outputs["snapshot"],
                data=data,
                config=ticker_config,
                model_name="",  # the ticker's config names it
                min_improvement=min_improvement,
                git_revision=git_revision,
                triggered_by=triggered_by,
                pipeline_name=PIPELINE_NAME,
            )
            for task in (checked, table, trained, evaluated, registered):
                on_platform(task, platform)
        for task in (ingested, listed):
            on_platform(task, platform)
        return PerTickerOutputs(
            dsl.Collected(registered.outputs["model_name"]),
            dsl.Collected(registered.outputs["model_version"]),
            dsl.Collected(registered.outputs["alias"]),
            dsl.Collected(registered.outputs["reason"]),
        )

    return training_per_ticker
