"""The request path: protocol, request context, access log, metrics, error map, middleware."""
