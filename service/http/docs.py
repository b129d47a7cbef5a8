"""The API's docs pages (/docs: Swagger UI, /redoc: ReDoc), served with their assets, offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, a favicon from FastAPI's site and
ReDoc's fonts from Google: blank without internet. Here every asset comes from the installed
`fastapi-offline` distribution (the one maintained PyPI package shipping both UIs), served
under ASSETS_PATH, so the pages name no host but the service's own.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
# The pages may load from the service only. ReDoc's bundle reaches for its vendor's logo on
# cdn.redoc.ly whatever its options: the browser refuses it here (ReDoc then hides the image).
# Inline: Swagger UI's start-up script and both UIs' styles; blob: ReDoc's search worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'self'"
)


def assets_dir() -> Path:
    """Swagger UI's bundle and CSS, ReDoc's standalone bundle and a favicon, as installed."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets for `app`, which serves OPENAPI_PATH."""
    assets = StaticFiles(directory=assets_dir())

    # A route, not a mount: `apictl routes`, the metrics and the access log name it
    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def docs_asset(name: str, request: Request) -> Response:
        """One asset file (StaticFiles: content type, ETag, 304, no path outside the folder)."""
        return await assets.get_response(name, request.scope)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_swagger_ui_html(
                openapi_url=root + OPENAPI_PATH,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
            )
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _confined(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_redoc_html(
                openapi_url=root + OPENAPI_PATH,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
