"""The batch-scoring pipeline: ingest -> predict, for users who score nightly, not per request.

Built for a ``Platform`` when compiled, as the training pipeline is. ``predict`` reads the
registry's current champion, so it is never cached; ingest is cached on the data location and
``data_version`` like training's.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset
from kfp.dsl.graph_component import GraphComponent
from kubeline.components import ingest, predict
from kubeline.components.docs import one_line_entries, returns_of
from kubeline.pipelines.cluster import Platform, on_platform

PIPELINE_NAME = "kubeline-batch-scoring"


class ScoringOutputs(NamedTuple):
    predictions: Dataset


def batch_scoring_pipeline(platform: Platform) -> GraphComponent:
    """The batch-scoring pipeline, every task on ``platform``."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Score a whole data set of daily OHLCV bars with the champion (or a pinned "
        "version), through the feature code training uses.",
    )
    @one_line_entries
    @returns_of(predict)  # the pipeline's output is predict's
    def batch_scoring(
        data: str, data_version: str = "", model_name: str = "", version: str = ""
    ) -> ScoringOutputs:
        """Score every bar of the data with a registered model version.

        Args:
            data: Local path or s3:// prefix of the raw OHLCV files (any supported layout).
            data_version: What identifies the data behind ``data``: ingest is served from KFP's
                cache for the same location and version. Change it when the data changes.
            model_name: Registered model name; "" = the KUBELINE_MODEL_NAME setting.
            version: Model version to score with; "" = the one behind the champion alias when
                the run starts.
        """
        ingested = ingest(data=data, data_version=data_version)
        scored = predict(raw=ingested.outputs["raw"], model_name=model_name, version=version)
        # The champion may have moved since the last run: a cached score would be the old one's.
        scored.set_caching_options(False)
        # The whole data set is scored in memory, as training's train step holds its table.
        scored.set_cpu_limit("2").set_memory_limit("4G")
        for task in (ingested, scored):
            on_platform(task, platform)
        return ScoringOutputs(scored.outputs["predictions"])

    return batch_scoring
