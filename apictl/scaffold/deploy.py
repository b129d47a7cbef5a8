"""`apictl scaffold deploy`: a Dockerfile and Kubernetes manifests that match the settings.

Every `templates/deploy/**/*.tmpl` is rendered with string.Template to the same path under the
project folder, without its `.tmpl` suffix. Nothing is written while any target exists, unless
--force.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from apictl import __version__
from apictl.errors import ExitCode
from apictl.output import console, fail
from service.process.bundled import bundled_dir

if TYPE_CHECKING:  # imported when the command runs: pydantic-settings is heavy for --help
    from service.config import Settings

# A DNS-1123 label short enough that the Job's `NAME-migrate` still is one (63 characters).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,53}[a-z0-9])?")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
DEFAULT_PYTHON_IMAGE = "python:3.12-slim"
GRACE_MARGIN_SECONDS = 5  # after the drain, before the kubelet's SIGKILL
# What a pod runs with, whatever the settings of the machine that renders the manifests.
_PRODUCTION = {"env": "production", "host": "0.0.0.0", "log_format": "json"}
# Not in the ConfigMap: the URLs (SECRET_FIELDS) are in the Secret; the embedded servers' data
# and a local migrations folder have no place in the image (its migrations ship in the wheel).
_NOT_IN_CONFIGMAP = {"data_dir", "migrations_dir"}


def deploy(
    out: Annotated[
        Path, typer.Option(file_okay=False, metavar="DIR", help="Project folder to write into")
    ] = Path("."),
    name: Annotated[
        str, typer.Option(help="Name of the Kubernetes objects, a DNS-1123 label: my-api")
    ] = "apictl",
    image: Annotated[
        str | None, typer.Option(help="Image the manifests run (default: NAME:VERSION)")
    ] = None,
    python_image: Annotated[
        str,
        typer.Option(
            metavar="IMAGE",
            help="Base image of the Dockerfile's stages: Python >= 3.11 with venv and pip (the"
            " default of its PYTHON_IMAGE build argument)",
        ),
    ] = DEFAULT_PYTHON_IMAGE,
    replicas: Annotated[int, typer.Option(min=1, help="Fewest pods (autoscaler minimum)")] = 2,
    max_replicas: Annotated[
        int | None,
        typer.Option(min=1, help="Most pods the autoscaler may run (default: 2 x --replicas)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist")] = False,
) -> None:
    """Write a Dockerfile, .dockerignore and Kubernetes manifests (deploy/k8s/) for the service;
    exit 1, writing nothing, if any exists (unless --force).

    The Dockerfile builds the project's wheel in one stage and runs it as a non-root user in
    the next, both on --python-image (its PYTHON_IMAGE build argument), with the service's
    lock (no embedded servers) and `apictl check health` as its HEALTHCHECK. deploy/k8s/ gets
    a ConfigMap of every non-secret setting (as read now from the environment and .env, set
    for production), a Deployment with liveness and readiness probes and a graceful stop, a
    Service, a migration Job, a HorizontalPodAutoscaler, a PodDisruptionBudget, and
    secret.yaml.example: the Secret holding DATABASE_URL and REDIS_URL that you create.

    Exit 1, writing nothing, when any of these files exists (unless --force); 2 on bad input.
    """
    from apictl.templating import write_files

    image = image or f"{name}:{__version__}"
    max_replicas = max_replicas or 2 * replicas
    _check_input(name, image, python_image, replicas, max_replicas)
    values = _template_values(
        _settings(),
        name=name,
        image=image,
        python_image=python_image,
        replicas=replicas,
        max_replicas=max_replicas,
    )
    write_files({out / path: text for path, text in render(values).items()}, force=force)
    console.print(
        f"next:\n  docker build -t {image} {out}\n"
        f"  kubectl create secret generic {name}-secrets"
        " --from-literal=DATABASE_URL=postgresql://... --from-literal=REDIS_URL=redis://...\n"
        f"  kubectl apply -f {out / 'deploy' / 'k8s'}",
        soft_wrap=True,
    )


def _check_input(
    name: str, image: str, python_image: str, replicas: int, max_replicas: int
) -> None:
    if not _NAME.fullmatch(name):
        fail(
            f"invalid name {name!r}",
            hint="use a DNS-1123 label: 1 to 55 of a-z, 0-9 and '-', not starting or ending"
            " with '-'",
            code=ExitCode.USAGE,
        )
    if not _IMAGE.fullmatch(image):
        fail(
            f"invalid image {image!r}",
            hint="use an image reference such as registry.example.com/api:1.0",
            code=ExitCode.USAGE,
        )
    if not _IMAGE.fullmatch(python_image):
        fail(
            f"invalid --python-image {python_image!r}",
            hint=f"use an image reference such as {DEFAULT_PYTHON_IMAGE}"
            " or registry.example.com/python:3.12",
            code=ExitCode.USAGE,
        )
    if max_replicas < replicas:
        fail(f"--max-replicas {max_replicas} is below --replicas {replicas}", code=ExitCode.USAGE)


def _settings() -> Settings:
    """The settings of this machine, read as development: production would demand
    DATABASE_URL and REDIS_URL here, but the pods take theirs from the cluster's Secret."""
    from service.config import load_settings

    return load_settings(env="development")


def _template_values(
    settings: Settings,
    *,
    name: str,
    image: str,
    python_image: str,
    replicas: int,
    max_replicas: int,
) -> dict[str, object]:
    """What the deploy templates may use: `$name`, `$port`, `$grace_period`, ..."""
    from service.config import PRODUCTION_SHUTDOWN_DELAY

    delay = settings.shutdown_delay
    drain_delay = PRODUCTION_SHUTDOWN_DELAY if delay is None else delay
    return {
        "name": name,
        "image": image,
        "python_image": python_image,
        "replicas": replicas,
        "max_replicas": max_replicas,
        "port": settings.port,
        "shutdown_timeout": f"{settings.shutdown_timeout:g}",
        "drain_delay": f"{drain_delay:g}",
        "grace_period": math.ceil(drain_delay)
        + math.ceil(settings.shutdown_timeout)
        + GRACE_MARGIN_SECONDS,
        # /ready answers within the pool's acquire timeout (its other checks take at most 2 s)
        "ready_timeout": math.ceil(settings.db_acquire_timeout) + 2,
        "db_pool_max": settings.db_pool_max,
        "max_connections": max_replicas * settings.db_pool_max,
        "config_data": _config_map_data(settings),
    }


def _config_map_data(settings: Settings) -> str:
    """The ConfigMap's `data:` lines: every non-secret setting as a pod in production needs it.

    A setting left unset here whose default depends on APICTL_ENV (APICTL_DOCS) is left out:
    the pod applies production's default.
    """
    from service.config import SECRET_FIELDS, env_name

    values = {
        field: _PRODUCTION.get(field, getattr(settings, field))
        for field in type(settings).model_fields
        if field not in _NOT_IN_CONFIGMAP and field not in SECRET_FIELDS
    }
    return "\n".join(
        f"  {env_name(field)}: {json.dumps(_env_text(value))}"
        for field, value in values.items()
        if value is not None
    )


def _env_text(value: object) -> str:
    """`value` written as its environment variable would be."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"  # 3, not 3.0
    return str(value)


def render(values: Mapping[str, object]) -> dict[Path, str]:
    """Every deploy template rendered, by its path relative to the project folder."""
    from apictl.templating import render as render_template

    root = bundled_dir("templates")
    return {
        template.relative_to(root / "deploy").with_suffix(""): render_template(
            str(template.relative_to(root)), **{k: str(v) for k, v in values.items()}
        )
        for template in sorted((root / "deploy").rglob("*.tmpl"))
    }
