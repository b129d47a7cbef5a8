"""A trace starting at apictl is sampled as the configured OTEL_TRACES_SAMPLER decides.

ServerSpans decides a new trace with one random number against `new_trace_bound` instead of
asking the SDK's sampler per request: for every sampler the environment can name, that
decision must be the SDK's own, id for id.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

from service.tracing.server import LOW_BITS, new_trace_bound


class EveryOther(Sampler):
    """A sampler of the user's own (not one of the SDK's): asked per request."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def get_description(self) -> str:
        return "EveryOther"


@pytest.mark.parametrize(
    ("name", "argument", "bound"),
    [
        ("always_on", None, LOW_BITS),
        ("always_off", None, 0),
        ("traceidratio", "0.25", LOW_BITS // 4),
        ("parentbased_always_on", None, LOW_BITS),
        ("parentbased_always_off", None, 0),
        ("parentbased_traceidratio", "0.01", round(0.01 * LOW_BITS)),
    ],
)
def test_the_fast_decision_is_the_sdk_samplers_own(
    monkeypatch: pytest.MonkeyPatch, name: str, argument: str | None, bound: int
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if argument is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", argument)
    sampler = TracerProvider().sampler
    assert new_trace_bound(sampler) == bound
    rng = random.Random(7)
    near = [bound - 1, bound, bound + 1] if 0 < bound < LOW_BITS else []
    for low in [0, LOW_BITS - 1, *near, *(rng.getrandbits(64) for _ in range(2000))]:
        trace_id = rng.getrandbits(64) << 64 | low
        sdk = sampler.should_sample(None, trace_id, "GET", SpanKind.SERVER).decision
        assert (low < bound) == (sdk is Decision.RECORD_AND_SAMPLE), (name, low)


def test_a_sampler_of_ones_own_is_asked_every_time() -> None:
    assert new_trace_bound(EveryOther()) is None
