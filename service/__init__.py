"""The API service and everything the CLI shares with it."""

__version__ = "0.1.0"
