"""service.process.handover: what `apictl serve` resolved reaches the processes it starts."""

from __future__ import annotations

import pytest

from service.config import load_settings
from service.process import handover


def test_load_settings_reads_the_handover_under_explicit_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(handover.VARIABLE, "")  # restored after the test: write() sets it
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/unused")
    resolved = load_settings(
        _env_file=None, database_url="postgresql://db/app", redis_url="redis://r/0", port=9001
    )
    handover.write(resolved)
    assert set(handover.read()) == set(handover.FIELDS)

    child = load_settings(_env_file=None)
    assert (child.database_url, child.redis_url, child.port) == (
        "postgresql://db/app",
        "redis://r/0",
        9001,
    )
    assert load_settings(_env_file=None, port=9002).port == 9002


def test_no_handover_means_no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(handover.VARIABLE, raising=False)
    assert handover.read() == {}
