"""kubeline: a Kubernetes-native ML lifecycle for Python."""

__version__ = "0.1.0"
