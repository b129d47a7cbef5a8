"""apictl: one CLI for the whole lifecycle of one FastAPI service."""

__version__ = "0.1.0"
