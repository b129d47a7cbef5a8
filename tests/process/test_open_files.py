"""The open-files limit: raised to the hard one, and what it leaves a worker for event streams."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from service.config import load_settings
from service.process.open_files import current_limit, hard_limit, stream_capacity, stream_limit

HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
LOW = 512
# a process started with the soft limit at LOW raises it and reports both limits, as JSON
RAISE = """
import json, resource
from service.process.open_files import current_limit, raise_limit
before = current_limit()
after = raise_limit()
print(json.dumps([before, after, *resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def _run_with_soft_limit(soft: int, code: str) -> list[int]:
    def lower() -> None:  # in the child, before it runs Python: only its soft limit changes
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, HARD))

    result = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=lower, capture_output=True, text=True, check=True
    )
    numbers: list[int] = json.loads(result.stdout)
    return numbers


@pytest.mark.skipif(HARD == resource.RLIM_INFINITY or HARD <= LOW, reason="needs a hard limit")
def test_a_lowered_soft_limit_is_raised_to_the_hard_one() -> None:
    assert _run_with_soft_limit(LOW, RAISE) == [LOW, HARD, HARD, HARD]


def test_a_soft_limit_at_the_hard_one_is_kept() -> None:
    soft = hard_limit()
    assert _run_with_soft_limit(soft, RAISE) == [soft, soft, soft, soft]


def test_capacity_is_what_the_pools_and_a_reserve_leave() -> None:
    settings = load_settings(_env_file=None, db_pool_max=20)
    # 20 database connections, the relay's 1, Redis's 50, a reserve of 200
    assert stream_capacity(settings, 1024) == 1024 - 20 - 1 - 50 - 200
    assert stream_capacity(load_settings(_env_file=None, db_pool_max=100), 1024) == 673
    assert stream_capacity(settings, 271) == 0
    assert stream_capacity(settings, 100) == 0  # never below 0


def test_the_stream_limit_is_the_setting_within_the_capacity() -> None:
    capacity = stream_capacity(load_settings(_env_file=None), current_limit())
    assert capacity > 10
    assert stream_limit(load_settings(_env_file=None)) == capacity
    assert stream_limit(load_settings(_env_file=None, max_streams=10)) == 10
    assert stream_limit(load_settings(_env_file=None, max_streams=capacity + 1)) == capacity
