"""Pure ASGI middleware for the hot path (no BaseHTTPMiddleware)."""
