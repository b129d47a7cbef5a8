"""The request path: HTTP protocol, request context, access log, metrics, error map, middleware."""
