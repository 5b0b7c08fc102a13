"""Monitoring: is the champion still fit for the data it is asked about?

``reference`` is what the champion was trained on (a sample of its training features, logged
with the version at register); ``window`` is what it is asked about now (the inference log, or
market data scored with the training code); ``drift`` compares the two with Evidently;
``decay`` judges its live error as the training gate judges a holdout; ``decision`` names the
outcome and its exit code. ``kubeline.steps.monitor`` runs one check end to end.
"""
