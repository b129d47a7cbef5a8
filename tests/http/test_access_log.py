"""The access log's lines: each one's time to the millisecond, though formatted once a
millisecond, and its duration rounded to hundredths of a millisecond."""

from __future__ import annotations

import io
import json
import time

import pytest

from service.context import RequestInfo
from service.http.access_log import AccessLog

# within one millisecond, the next millisecond, the next second, a day later
MOMENTS = [1764763199.9981, 1764763199.9984, 1764763199.9991, 1764763200.0003, 1764849600.5]


def test_each_line_has_its_own_time_and_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.BytesIO()
    log = AccessLog(json=True, stream=stream)
    for index, moment in enumerate(MOMENTS):
        monkeypatch.setattr(time, "time", lambda moment=moment: moment)
        log.record(RequestInfo(f"r-{index}"), "GET", "/health", "/health", 200, 0.0012345)
    monkeypatch.undo()
    log.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    expected = [
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(m)) + f".{int(m * 1000) % 1000:03d}Z"
        for m in MOMENTS
    ]
    assert [line["ts"] for line in lines] == expected
    assert expected[0] == expected[1] != expected[2]  # the same millisecond, then the next
    assert {line["duration_ms"] for line in lines} == {1.23}


def test_console_lines_carry_the_local_second() -> None:
    stream = io.BytesIO()
    log = AccessLog(json=False, stream=stream)
    log.record(RequestInfo("r-1", "u-1"), "GET", "/health", "/health", 200, 0.0004)
    log.flush()
    (line,) = stream.getvalue().decode().splitlines()
    stamp, level, *_ = line.split()
    assert time.strptime(stamp, "%H:%M:%S")
    assert level == "INFO"
    assert "duration_ms=0.4 user_id=u-1 request_id=r-1" in line
