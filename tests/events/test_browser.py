"""The event stream in a real browser: a page on another origin, EventSource, a ticket.

A headless Chromium loads a page from a second loopback origin (another port), allowed by
APICTL_CORS_ORIGINS. The page logs in with fetch, buys a ticket and opens an EventSource on
`/api/v1/events?ticket=...`; nothing of it is driven from here but reading what it received.
The server is then restarted on its port while another instance takes the writes: the same
EventSource reconnects by itself, with the same URL and its Last-Event-ID, and gets what it
missed. No log line of either server holds the ticket or the token. The rules: docs/api/events.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from selenium import webdriver

from fixtures.accounts import Account
from fixtures.browser import network_requests
from fixtures.events import wait_for
from fixtures.servers import RunningServer, free_port
from service.events.bus import RETRY_MS

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>apictl events</title>
<script>
const API = %(api)s, EMAIL = %(email)s, PASSWORD = %(password)s;
window.opened = [];  // each time the EventSource (re)connected
window.seen = [];    // the post.created events it received
window.secrets = []; // what must never reach a log
async function answer(response) {
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}
(async () => {
  const login = await answer(await fetch(`${API}/api/v1/auth/login`, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email: EMAIL, password: PASSWORD}),
  }));
  const issued = await answer(await fetch(`${API}/api/v1/events/ticket`, {
    method: "POST",
    headers: {Authorization: `Bearer ${login.access_token}`},
  }));
  window.secrets = [login.access_token, issued.ticket];
  const query = new URLSearchParams({ticket: issued.ticket});
  const source = new EventSource(`${API}/api/v1/events?${query}`);
  source.onopen = () => window.opened.push(Date.now());
  source.addEventListener("post.created", (event) => {
    window.seen.push({id: event.lastEventId, title: JSON.parse(event.data).title});
  });
})().catch((error) => { window.failure = String(error); });
</script>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain static web server on another loopback port: (its origin, its folder)."""
    folder = tmp_path / "site"
    folder.mkdir()
    site = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}", folder
    site.shutdown()
    site.server_close()


def post(server: RunningServer, who: Account, title: str) -> None:
    response = httpx2.post(
        f"{server.url}/api/v1/posts", json={"title": title}, headers=who.headers, timeout=10
    )
    assert response.status_code == 201, response.text


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    state: dict[str, Any] = driver.execute_script(
        "return {opened: window.opened, seen: window.seen, secrets: window.secrets,"
        " failure: window.failure || null}"
    )
    assert state["failure"] is None, state["failure"]
    return state


def test_a_page_on_an_allowed_origin_streams_events_across_a_server_restart(
    browser: webdriver.Chrome,
    page_site: tuple[str, Path],
    start_server: Callable[..., RunningServer],
    server_env: dict[str, str],
    alice: Account,
    password: str,
) -> None:
    origin, folder = page_site
    env = {**server_env, "APICTL_CORS_ORIGINS": origin, "APICTL_LOG_LEVEL": "debug"}
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    values = {"api": api, "email": alice.email, "password": password}
    (folder / "index.html").write_text(PAGE % {k: json.dumps(v) for k, v in values.items()})
    first, writer = start_server(env, port=port), start_server(env)

    browser.get(f"{origin}/index.html")
    wait_for(lambda: len(page_state(browser)["opened"]) == 1, 10, "the EventSource opened")
    post(first, alice, "before the restart")
    wait_for(lambda: len(page_state(browser)["seen"]) == 1, 5, "the first event")

    code, first_log = first.stop()
    assert code == 0
    post(writer, alice, "missed 1")
    post(writer, alice, "missed 2")
    again = start_server(env, port=port)
    reconnected = wait_for(lambda: len(page_state(browser)["seen"]) == 3, 15, "missed events")
    post(again, alice, "after the restart")
    wait_for(lambda: len(page_state(browser)["seen"]) == 4, 5, "the live event")

    state = page_state(browser)
    assert [event["title"] for event in state["seen"]] == [
        "before the restart", "missed 1", "missed 2", "after the restart"
    ]  # fmt: skip
    ids = [tuple(map(int, event["id"].split("-"))) for event in state["seen"]]
    assert ids == sorted(set(ids))
    assert len(state["opened"]) == 2  # one EventSource, reconnected by itself once
    assert reconnected < RETRY_MS / 1000 + 5  # within about one retry interval of it being back
    token, ticket = state["secrets"]
    streams = [url for url in network_requests(browser).sent if "/api/v1/events?" in url]
    assert len(set(streams)) == 1  # the same URL, the same ticket, after the restart too
    assert f"ticket={ticket}" in streams[0]

    logs = [first_log, again.stop()[1], writer.stop()[1]]
    assert all("/api/v1/events" in log for log in logs[:2])  # the access log has the stream
    for log in logs:
        assert ticket not in log
        assert token not in log
