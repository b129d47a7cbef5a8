"""`apictl check`: probe a running service, validate configuration, judge production readiness."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from apictl.errors import ExitCode
from apictl.output import console, fail, print_error, print_json, print_table

if TYPE_CHECKING:  # each command imports what it uses (`deploy` loads psycopg and yoyo)
    import httpx2 as httpx

    from service.config import Settings
    from service.ops.deploy_checks import Finding

app = typer.Typer(
    help="Probe a running service, validate configuration, judge production readiness.",
    no_args_is_help=True,
)


def _default_url() -> str:
    from service.config import load_settings

    settings = load_settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


@app.command("health")
def health(
    url: Annotated[
        str | None, typer.Option(help="Base URL of the service (default: from APICTL_HOST/PORT)")
    ] = None,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="Seconds to wait for each probe")
    ] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Probe /health and /ready of a running service: exit 0 healthy, 1 unhealthy, 2 unreachable.

    Exit 0 healthy, 1 unhealthy (an endpoint answered non-200), 2 unreachable. Usable as a
    Docker HEALTHCHECK or a Kubernetes exec probe.
    """
    import httpx2 as httpx

    base = (url or _default_url()).rstrip("/")
    results: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=timeout) as client:
            for name in ("health", "ready"):
                response = client.get(f"{base}/{name}")
                results[name] = {
                    "status_code": response.status_code,
                    "body": _json_or_text(response),
                }
    except httpx.HTTPError as exc:
        if as_json:
            print_json(
                {"url": base, "status": "unreachable", "error": str(exc) or type(exc).__name__}
            )
        else:
            print_error(f"unreachable: {base} ({exc or type(exc).__name__})")
        raise typer.Exit(ExitCode.UNREACHABLE) from None
    healthy = all(result["status_code"] == 200 for result in results.values())
    if as_json:
        print_json({"url": base, "status": "healthy" if healthy else "unhealthy", **results})
    else:
        rows = [(name, r["status_code"], _summary(r["body"])) for name, r in results.items()]
        print_table(
            f"{base}: {'healthy' if healthy else 'UNHEALTHY'}", ["probe", "HTTP", "detail"], rows
        )
    if not healthy:
        raise typer.Exit(ExitCode.UNHEALTHY)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def _summary(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("checks"), dict):
        return ", ".join(f"{name} {check.get('status')}" for name, check in body["checks"].items())
    return body.get("status", "") if isinstance(body, dict) else str(body)


@app.command("config")
def config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show every setting and OTEL_* tracing variable, its value (secrets masked) and where it
    came from; exit 1 listing every problem.

    Exit 1 listing every problem when the configuration is invalid. The OTEL_* variables are
    read by the OpenTelemetry SDK from the environment only (never from .env).
    """
    from service.config import (
        ConfigError,
        Settings,
        env_name,
        load_settings,
        mask_url,
        setting_sources,
    )
    from service.tracing.environment import configured, endpoint, variables

    try:
        settings = load_settings()
    except ConfigError as exc:
        if as_json:
            print_json({"valid": False, "problems": exc.problems})
            raise typer.Exit(ExitCode.FAILURE) from None
        fail(
            f"invalid configuration ({len(exc.problems)} problem(s)):\n  "
            + "\n  ".join(exc.problems),
            hint="fix the variables above (environment or .env), then run this again",
        )
    sources = setting_sources(settings)
    rows = [
        {"variable": env_name(field), "value": _display(settings, field), "source": sources[field]}
        for field in Settings.model_fields
    ]
    rows += [{"variable": v.name, "value": v.value, "source": v.source} for v in variables()]
    traced_to = mask_url(endpoint()) if configured(os.environ) else None
    if as_json:
        tracing = {"enabled": traced_to is not None, "endpoint": traced_to}
        print_json({"valid": True, "settings": rows, "tracing": tracing})
        return
    print_table("configuration", ["variable", "value", "source"], [tuple(r.values()) for r in rows])
    if traced_to is not None:
        console.print(f"tracing on: OTLP/HTTP to {escape(traced_to)}")
    else:
        console.print(
            "tracing off: no OTEL_EXPORTER_OTLP_ENDPOINT (see docs/operations/tracing.md)"
        )
    console.print("[green]configuration is valid[/]")


def _display(settings: Settings, field: str) -> str:
    from service.config import SECRET_FIELDS, mask_url

    value = getattr(settings, field)
    if field in SECRET_FIELDS:
        return mask_url(value) if value else "(embedded)"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value is None and field == "api_rate_limit":
        return "off"
    return "" if value is None else str(value)


@app.command("deploy")
def deploy(
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Server processes sharing the database, in all: workers x replicas"
        ),
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Production-readiness findings (error, warning, info), like Django's check --deploy;
    exit 1 on any error.

    Run it with the deployment's environment. Checks: APICTL_ENV, embedded servers, CORS '*',
    debug and console logs, weak or missing passwords, the database pool against the server's
    max_connections, pending migrations and drift, Redis reachable, tracing, live event
    streams per worker against the open-files limit. Exit 1 if any error.
    """
    from service.config import ConfigError, load_settings
    from service.ops.deploy_checks import config_findings, deploy_findings

    try:
        settings = load_settings()
    except ConfigError as exc:
        findings = config_findings(exc.problems)
    else:
        findings = deploy_findings(settings, workers)
    if as_json:
        print_json([asdict(f) for f in findings])
    else:
        _print_findings(findings)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(ExitCode.FAILURE)


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def _print_findings(findings: list[Finding]) -> None:
    rows = [
        (f"[{_SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.id, escape(f.message), escape(f.hint))
        for f in findings
    ]
    print_table("deploy checks", ["severity", "check", "finding", "hint"], rows)
    counts = {s: sum(f.severity == s for f in findings) for s in _SEVERITY_STYLE}
    if counts["error"]:
        console.print(
            f"[bold red]not ready:[/] {counts['error']} error(s), {counts['warning']} warning(s)"
        )
    elif counts["warning"]:
        console.print(f"[yellow]{counts['warning']} warning(s)[/], no errors")
    else:
        console.print("[green]ready for production[/]")
