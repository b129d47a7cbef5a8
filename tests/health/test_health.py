"""GET /health and GET /ready."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.ops.migrations import Migrator


def test_health_is_ok_and_touches_nothing(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"


ALL_OK = {
    "database": {"status": "ok"},
    "redis": {"status": "ok"},
    "migrations": {"status": "ok"},
    "events": {"status": "ok", "backlog": 0},
}


def test_ready_reports_database_redis_migrations_and_events_ok(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": ALL_OK}
    assert response.headers["x-content-type-options"] == "nosniff"  # every response has it


def test_pending_migrations_make_ready_503(settings: Settings, empty_database_url: str) -> None:
    unmigrated = settings.model_copy(update={"database_url": empty_database_url})
    with TestClient(create_app(unmigrated)) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == {"status": "ok"}
        migrations = body["checks"]["migrations"]
        assert migrations["status"] == "down"
        assert migrations["pending"][0] == "0001_users"
        assert migrations["pending"][-1] == "0006_webhooks"
        Migrator(unmigrated).up()
        assert client.get("/ready").status_code == 200


def test_redis_down_is_degraded_not_unavailable(settings: Settings, free_port: int) -> None:
    nowhere = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port}/0"})
    with TestClient(create_app(nowhere)) as client:
        response = client.get("/ready")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["checks"]["redis"]["status"] == "degraded"
        assert client.get("/health").status_code == 200


def test_database_gone_makes_ready_503_but_health_stays_200(
    client: TestClient, database_url: str, drop_database: Callable[[str], None]
) -> None:
    assert client.get("/ready").status_code == 200
    drop_database(database_url)
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "down"
    assert client.get("/health").status_code == 200
