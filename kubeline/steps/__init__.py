"""One executor per lifecycle step: artifact paths and parameters in, files and metadata out.

This is the only place that turns artifact paths into frames and back. KFP components and the
CLI call the same functions, so a notebook, a local run and a cluster run compute the same thing.
"""
