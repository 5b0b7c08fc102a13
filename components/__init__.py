"""KFP v2 components: one thin, typed shim per lifecycle step over ``kubeline.steps``.

Shipped in the kubeline wheel as ``kubeline.components``. Every component runs in the one image
named by the ``KUBELINE_IMAGE`` setting at compile time and installs nothing at run time.
"""

from kubeline.components.candidates import candidates
from kubeline.components.evaluate import evaluate
from kubeline.components.features import features
from kubeline.components.ingest import ingest
from kubeline.components.monitor import monitor
from kubeline.components.predict import predict
from kubeline.components.register import register
from kubeline.components.ticker_configs import ticker_configs
from kubeline.components.train import train
from kubeline.components.train_all import train_all
from kubeline.components.tune import tune
from kubeline.components.validate import validate

__all__ = [
    "candidates",
    "evaluate",
    "features",
    "ingest",
    "monitor",
    "predict",
    "register",
    "ticker_configs",
    "train",
    "train_all",
    "tune",
    "validate",
]
