"""Serving: the registry's champion over HTTP (BentoML), and the BentoML-free loading code.

Nothing is imported here: ``kubeline.serving.loaded`` is what batch scoring needs, and only
``kubeline.serving.service`` imports BentoML.
"""
