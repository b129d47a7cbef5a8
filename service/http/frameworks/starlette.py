"""Starlette beyond its documented API: what apictl uses of it, and why.

- `ExceptionMiddleware`: the layer that maps exceptions to the app's handlers, entered
  directly by `frameworks.fastapi.ServiceApp` (Starlette documents it as built in, not as
  something to compose).
- `Match`: a route's verdict on a scope (`BaseRoute.matches`), read to match a request once
  (service/http/routing.py); Starlette's router is its only documented reader.
- `BaseRoute`: the type of a route as the router holds it.
"""

from __future__ import annotations

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match

__all__ = ["BaseRoute", "ExceptionMiddleware", "Match"]
