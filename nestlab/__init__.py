"""nestlab: a lab that rebuilds vSphere with Kubernetes from open source parts.

The package is layered (see ARCHITECTURE.md and the import-linter contracts in pyproject.toml):
``cli`` on top, then the parts that act on machines, then ``runtime``/``trust``, then the pure
``spec`` at the bottom.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nestlab")
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0.0.0+unknown"
