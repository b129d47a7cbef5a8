"""apictl: one CLI for the whole lifecycle of one FastAPI service."""

from service import __version__

__all__ = ["__version__"]
