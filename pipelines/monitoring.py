"""The monitoring pipeline: one check of the champion, its report and numbers in the KFP UI.

For a schedule in KFP (``kubeline schedule --pipeline monitoring``), beside the chart's
CronJob: the same check (``kubeline.steps.monitor``), run in the monitor image (Evidently is
not in the pipeline image). Never cached: the window and the champion change between runs.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Metrics
from kfp.dsl.graph_component import GraphComponent
from kubeline.components import monitor
from kubeline.components.docs import one_line_entries, returns_of
from kubeline.pipelines.cluster import Platform, on_platform

PIPELINE_NAME = "kubeline-monitoring"


class MonitoringOutputs(NamedTuple):
    metrics: Metrics
    report: HTML
    decision: str


def monitoring_pipeline(platform: Platform) -> GraphComponent:
    """The monitoring pipeline, its one task in the platform's monitor image."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Check the champion for drift and decay: Evidently's report and the "
        "decision (ok, drift, decay, insufficient-data).",
    )
    @one_line_entries
    @returns_of(monitor)  # the pipeline's outputs are the check's
    def monitoring(
        config: str = "",
        current: str = "",
        truth: str = "",
        since: str = "",
        until: str = "",
        model_name: str = "",
        version: str = "",
    ) -> MonitoringOutputs:
        """Check the champion (or a pinned version) against the inference log or market data.

        Args:
            config: The run config as YAML text, not a path ("" = the defaults): the
                monitor's thresholds.
            current: s3:// prefix of market data to judge instead of the inference log.
            truth: s3:// prefix of market data giving logged predictions their realized targets.
            since: The window's start (a date or an ISO time); "" = all of it.
            until: The inference log window's end; "" = now.
            model_name: Registered model name; "" = the KUBELINE_MODEL_NAME setting.
            version: Model version to judge; "" = the one behind the champion alias now.
        """
        checked = monitor(
            config=config, current=current, truth=truth, since=since, until=until,
            model_name=model_name, version=version,
        )  # fmt: skip
        checked.set_caching_options(False)
        checked.set_cpu_limit("2").set_memory_limit("4G")
        on_platform(checked, platform, image=platform.monitor_image)
        return MonitoringOutputs(
            checked.outputs["metrics"], checked.outputs["report"], checked.outputs["decision"]
        )

    return monitoring
