"""When a failed delivery is tried again: the schedule, its jitter and Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from service.webhooks.delivery import next_delay, retry_after

SCHEDULE = [5, 300, 1800]


def test_each_failure_waits_its_step_within_ten_percent() -> None:
    rand = random.Random(7)
    for attempts, step in enumerate(SCHEDULE, start=1):
        delays = [next_delay(SCHEDULE, attempts, None, rand) for _ in range(200)]
        assert all(d is not None and step * 0.9 <= d <= step * 1.1 for d in delays)
        assert len({round(d or 0, 3) for d in delays}) > 100  # jittered, not one value


def test_after_the_last_step_there_is_no_next_attempt() -> None:
    assert next_delay(SCHEDULE, len(SCHEDULE) + 1, None, random.Random()) is None


@pytest.mark.parametrize(
    ("asked", "lowest", "highest"),
    [
        (60, 60, 60),  # longer than this step (5 s), shorter than the next (300 s): as asked
        (10_000, 300, 300),  # longer than the next step: held to it
        (1, 4.5, 5.5),  # shorter than the step: the step
    ],
)
def test_retry_after_is_honoured_up_to_the_following_step(
    asked: float, lowest: float, highest: float
) -> None:
    delay = next_delay(SCHEDULE, 1, asked, random.Random())
    assert delay is not None
    assert lowest <= delay <= highest


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("120") == 120
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= (retry_after(later) or 0) <= 90
    assert retry_after("soon") is None
    assert retry_after(None) is None
