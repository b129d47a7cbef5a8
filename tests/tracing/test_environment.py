"""`apictl check config` shows the OTEL_* variables tracing runs on, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

Apictl = Callable[..., subprocess.CompletedProcess[str]]


def test_check_config_lists_the_otel_variables_with_secrets_masked(apictl: Apictl) -> None:
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://ingest:s3cr3t-pw@collector.example.com:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k3y-XYZ,Authorization=Basic%20dXNlcjpwYXNz",
        "OTEL_TRACES_SAMPLER_ARG": "0.05",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    result = apictl("check", "config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    rows = {row["variable"]: row for row in output["settings"]}
    assert rows["OTEL_EXPORTER_OTLP_HEADERS"]["value"] == "api-key=***,Authorization=***"
    assert rows["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == (
        "https://ingest:***@collector.example.com:4318"
    )
    assert rows["OTEL_TRACES_SAMPLER_ARG"] == {
        "variable": "OTEL_TRACES_SAMPLER_ARG", "value": "0.05", "source": "env"
    }  # fmt: skip
    assert rows["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_always_on"
    assert rows["OTEL_SERVICE_NAME"] == {
        "variable": "OTEL_SERVICE_NAME", "value": "apictl", "source": "default"
    }  # fmt: skip
    assert rows["OTEL_EXPORTER_OTLP_COMPRESSION"]["value"] == "gzip"  # any other OTEL_* set
    assert output["tracing"] == {
        "enabled": True,
        "endpoint": "https://ingest:***@collector.example.com:4318/v1/traces",
    }
    for secret in ("s3cr3t-pw", "k3y-XYZ", "dXNlcjpwYXNz"):
        assert secret not in result.stdout


def test_check_config_says_when_tracing_is_off(apictl: Apictl) -> None:
    result = apictl("check", "config", env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "tracing off" in result.stdout
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stdout
    disabled = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
        "OTEL_SDK_DISABLED": "true",
    }
    assert json.loads(apictl("check", "config", "--json", env=disabled).stdout)["tracing"] == {
        "enabled": False,
        "endpoint": None,
    }
