"""/docs and /redoc: served offline from the packaged assets, and off with APICTL_DOCS=false."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from fixtures.browser import console_errors, network_requests
from fixtures.servers import RunningServer
from service.app import create_app
from service.config import Settings

Apictl = Callable[..., CompletedProcess[str]]

PAGES = ("/docs", "/redoc")
# What FastAPI's own pages load: Swagger UI / ReDoc, a favicon and ReDoc's fonts
THIRD_PARTY = ("cdn.jsdelivr.net", "fastapi.tiangolo.com", "fonts.googleapis.com", "unpkg.com")
_LINKED = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def linked(html: str) -> list[str]:
    """Every URL the page's tags load (scripts, stylesheets, icons)."""
    return _LINKED.findall(html)


@pytest.fixture
def app_with(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """app_with(env="production", docs=True): a started app of this test's settings, changed."""
    with contextlib.ExitStack() as started:

        def make(**changes: object) -> TestClient:
            app = create_app(settings.model_copy(update=changes))
            return started.enter_context(TestClient(app))

        yield make


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_only_assets_of_the_service(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for host in THIRD_PARTY:
        assert host not in response.text
    assert "//" not in "".join(linked(response.text)), "every asset is on the service's origin"
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_every_asset_the_pages_name_is_served(client: TestClient) -> None:
    urls = {url for page in PAGES for url in linked(client.get(page).text)}
    assert {url.rsplit("/", 1)[1] for url in urls} == {
        "swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png",
    }  # fmt: skip
    expected_type = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert expected_type[url[url.rindex(".") :]] in response.headers["content-type"], url
        assert len(response.content) > 1000, url


def test_assets_are_cached_by_etag_and_nothing_else_of_the_package_is_served(
    client: TestClient,
) -> None:
    first = client.get("/docs/assets/swagger-ui.css")
    again = client.get(
        "/docs/assets/swagger-ui.css", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    for path in ("/docs/assets/core.py", "/docs/assets/%2E%2E", "/docs/assets/..%2Fcore.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_docs_false_turns_off_the_pages_their_assets_and_the_openapi_document(
    app_with: Callable[..., TestClient],
) -> None:
    client = app_with(docs=False)
    for path in (*PAGES, "/openapi.json", "/docs/assets/swagger-ui.css", "/docs/oauth2-redirect"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_production_serves_no_docs_unless_asked(app_with: Callable[..., TestClient]) -> None:
    hidden = app_with(env="production")
    assert hidden.get("/docs").status_code == hidden.get("/openapi.json").status_code == 404
    shown = app_with(env="production", docs=True)
    assert shown.get("/redoc").status_code == shown.get("/openapi.json").status_code == 200


def test_apictl_openapi_exports_the_document_with_docs_off(apictl: Apictl) -> None:
    result = apictl("openapi", env={**os.environ, "APICTL_DOCS": "false"})
    assert result.returncode == 0, result.stderr
    assert "/api/v1/posts" in json.loads(result.stdout)["paths"]


def test_check_config_lists_the_setting(apictl: Apictl) -> None:
    result = apictl("check", "config", "--json", env={**os.environ, "APICTL_DOCS": "false"})
    assert result.returncode == 0, result.stderr
    rows = {row["variable"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["APICTL_DOCS"] == {"variable": "APICTL_DOCS", "value": "False", "source": "env"}


def api_document(server: RunningServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx2.get(f"{server.url}/openapi.json").json()
    return document


def open_page(browser: Chrome, url: str, selector: str, count: int) -> list[Any]:
    """Load `url` and wait (at most 30 s) until `count` elements match `selector`."""
    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda page: len(page.find_elements(By.CSS_SELECTOR, selector)) >= count
    )
    return list(browser.find_elements(By.CSS_SELECTOR, selector))


def test_swagger_ui_shows_every_operation_in_a_browser_that_reaches_only_the_service(
    browser: Chrome,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(server_env)
    paths = api_document(server)["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item}
    blocks = open_page(browser, f"{server.url}/docs", ".opblock", len(operations))
    browser.save_screenshot(str(tmp_path / "docs.png"))
    shown = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in blocks
    }
    assert shown == operations
    requests = network_requests(browser)
    assert f"{server.url}/openapi.json" in requests.sent
    assert [url for url in requests.sent if not url.startswith(f"{server.url}/")] == []
    assert requests.blocked == []
    assert console_errors(browser) == []


def test_redoc_shows_every_operation_and_its_vendor_logo_never_leaves_the_browser(
    browser: Chrome,
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = start_server(server_env)
    paths = api_document(server)["paths"]
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values()}
    sections = open_page(
        browser, f"{server.url}/redoc", "[data-section-id^='operation/']", len(operation_ids)
    )
    browser.save_screenshot(str(tmp_path / "redoc.png"))
    shown = {section.get_attribute("data-section-id") for section in sections}
    assert shown == {f"operation/{operation_id}" for operation_id in operation_ids}
    requests = network_requests(browser)
    assert f"{server.url}/openapi.json" in requests.sent
    assert [url for url in requests.sent if not url.startswith(f"{server.url}/")] == []
    # ReDoc's bundle asks for cdn.redoc.ly's logo; the page's Content-Security-Policy refuses it
    assert all(url.startswith("https://cdn.redoc.ly/") for url in requests.blocked)
    errors = console_errors(browser)
    assert all("cdn.redoc.ly" in error and "Content Security Policy" in error for error in errors)
