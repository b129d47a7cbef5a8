"""The side-by-side benchmark: apictl against a bare ASGI reference (see bench/run.py)."""
