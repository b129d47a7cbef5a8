"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

A real `apictl serve`, authenticated as an admin (so every operation is reachable); valid and
invalid inputs are generated for every operation. Each answer must not be a 5xx, must use a
documented status and content type, must match its schema, and invalid input must be refused.
Left out: logout (it would end the token) and the event stream (it never ends).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from fixtures.accounts import Account
from fixtures.servers import RunningServer

pytestmark = pytest.mark.slow
EXAMPLES = 150  # per operation and mode
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
LEFT_OUT = {"/api/v1/auth/logout", "/api/v1/events"}


def test_every_operation_answers_by_its_schema(
    start_server: Callable[..., RunningServer], server_env: dict[str, str], admin: Account
) -> None:
    server = start_server({**server_env, "APICTL_LOGIN_RATE_LIMIT": "100000/minute"})
    document = httpx2.get(f"{server.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    sent: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our OpenAPI document is invalid: {result.err()}"
        operation = result.ok()
        if operation.path in LEFT_OUT:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # report, do not shrink
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case[Any]) -> None:
                sent[case.operation.label] += 1
                case.call_and_validate(
                    base_url=server.url, headers=admin.headers, checks=CHECKS, timeout=10
                )

            try:
                run()
            except Unsatisfiable:  # no parameters and no body: nothing can be made invalid
                assert mode is GenerationMode.NEGATIVE
            except Exception as exc:  # one line per failing operation, then all at once
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:2000]}")
    total = sum(sent.values())
    print(f"\nfuzzed {total} cases over {len(sent)} operations: {dict(sent)}")
    assert not failures, "\n\n".join(failures)
    assert total >= 2000
