"""`apictl scaffold deploy` through the real entry point: what it writes and what it refuses."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.config import PRODUCTION_SHUTDOWN_DELAY, Settings, env_name

Apictl = Callable[..., subprocess.CompletedProcess[str]]
Manifest = dict[str, Any]

DOCKER_FILES = {"Dockerfile", ".dockerignore"}
APPLIED = {
    "configmap.yaml", "deployment.yaml", "service.yaml", "migrate-job.yaml", "hpa.yaml", "pdb.yaml",
}  # fmt: skip
SECRET_EXAMPLE = "secret.yaml.example"
ROOT = Path(__file__).parent.parent.parent


@dataclass
class Rendered:
    """The files one `apictl scaffold deploy` wrote, and what it printed."""

    out: Path
    stdout: str

    @property
    def k8s(self) -> Path:
        return self.out / "deploy" / "k8s"

    def manifests(self) -> dict[str, Manifest]:
        """Every YAML document `kubectl apply -f deploy/k8s/` would apply, by kind."""
        documents = [
            document
            for path in self.k8s.glob("*.yaml")
            for document in yaml.safe_load_all(path.read_text())
        ]
        by_kind = {document["kind"]: document for document in documents}
        assert len(by_kind) == len(documents), "one object of each kind"
        return by_kind

    def secret_example(self) -> Manifest:
        document: Manifest = yaml.safe_load((self.k8s / SECRET_EXAMPLE).read_text())
        return document

    def dockerfile(self) -> list[tuple[str, str]]:
        """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
        text = re.sub(r"\\\n", " ", (self.out / "Dockerfile").read_text())
        lines = [line.strip() for line in text.splitlines()]
        return [
            (word.upper(), rest.strip())
            for word, _, rest in (line.partition(" ") for line in lines)
            if word and not word.startswith("#")
        ]


@pytest.fixture
def scaffold(apictl: Apictl, tmp_path: Path) -> Callable[..., Rendered]:
    """scaffold("--name", "shop"): render into a fresh folder, assert success."""

    def run(*args: str) -> Rendered:
        out = tmp_path / "project"
        result = apictl("scaffold", "deploy", "--out", str(out), *args)
        assert result.returncode == 0, result.stderr
        return Rendered(out, result.stdout)

    return run


def container(manifest: Manifest) -> Manifest:
    containers: list[Manifest] = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_writes_dockerfile_and_manifests_and_prints_each(scaffold: Callable[..., Rendered]) -> None:
    rendered = scaffold()
    written = {str(p.relative_to(rendered.out)) for p in rendered.out.rglob("*") if p.is_file()}
    k8s = {f"deploy/k8s/{name}" for name in (*APPLIED, SECRET_EXAMPLE)}
    assert written == DOCKER_FILES | k8s
    for path in written:
        assert f"created {(rendered.out / path).relative_to(Path.cwd())}" in rendered.stdout
    assert "docker build -t apictl:" in rendered.stdout


def test_applied_manifests_are_the_six_kinds_and_never_the_placeholder_secret(
    scaffold: Callable[..., Rendered],
) -> None:
    rendered = scaffold()
    assert set(rendered.manifests()) == {
        "ConfigMap", "Deployment", "Service", "Job", "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }  # fmt: skip
    assert rendered.secret_example()["kind"] == "Secret"


def test_deployment_runs_the_image_with_probes_and_a_graceful_stop(
    scaffold: Callable[..., Rendered],
) -> None:
    manifests = scaffold("--name", "shop", "--image", "registry.example.com/shop:1.2").manifests()
    deployment = manifests["Deployment"]
    api = container(deployment)
    assert deployment["metadata"]["name"] == "shop"
    assert api["image"] == "registry.example.com/shop:1.2"
    assert api["command"] == ["apictl", "serve"]
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports == {"http": 8080}
    for probe, path in (("startupProbe", "/health"), ("livenessProbe", "/health")):
        assert api[probe]["httpGet"] == {"path": path, "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}

    pod = deployment["spec"]["template"]["spec"]
    assert "lifecycle" not in api  # no preStop sleep: the app itself keeps serving on SIGTERM
    drain = Settings.model_fields["shutdown_timeout"].default
    assert pod["terminationGracePeriodSeconds"] > PRODUCTION_SHUTDOWN_DELAY + drain


def test_pods_run_unprivileged_on_a_read_only_root(scaffold: Callable[..., Rendered]) -> None:
    manifests = scaffold().manifests()
    for kind in ("Deployment", "Job"):
        pod = manifests[kind]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        security = container(manifests[kind])["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        mounts = {
            mount["mountPath"]: mount["name"]
            for mount in container(manifests[kind])["volumeMounts"]
        }
        assert {"name": mounts["/tmp"], "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_urls_come_from_the_secret_and_the_rest_from_the_configmap(
    scaffold: Callable[..., Rendered],
) -> None:
    rendered = scaffold("--name", "shop")
    manifests = rendered.manifests()
    secret = rendered.secret_example()
    for kind in ("Deployment", "Job"):
        spec = container(manifests[kind])
        assert spec["envFrom"] == [
            {"configMapRef": {"name": manifests["ConfigMap"]["metadata"]["name"]}}
        ]
        refs = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in spec["env"]}
        assert set(refs) == {"DATABASE_URL", "REDIS_URL", "APICTL_DB_DIRECT_URL"}
        for variable, ref in refs.items():
            optional = {"optional": True} if variable == "APICTL_DB_DIRECT_URL" else {}
            assert ref == {"name": secret["metadata"]["name"], "key": variable, **optional}
    assert set(secret["stringData"]) == {"DATABASE_URL", "REDIS_URL"}
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert not {"DATABASE_URL", "REDIS_URL"} & set(manifests["ConfigMap"]["data"])


def test_configmap_and_example_secret_are_a_valid_production_configuration(
    scaffold: Callable[..., Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = scaffold()
    data = rendered.manifests()["ConfigMap"]["data"]
    assert all(isinstance(value, str) for value in data.values())  # ConfigMap data are strings
    for variable, value in {**data, **rendered.secret_example()["stringData"]}.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.is_production
    assert settings.json_logs
    assert settings.host == "0.0.0.0"
    assert not settings.docs_enabled  # APICTL_DOCS left to production's default
    for field, info in Settings.model_fields.items():  # every other value round-trips
        if env_name(field) in data and field not in ("env", "host", "log_format"):
            assert getattr(settings, field) == info.get_default(call_default_factory=True), field


def test_manifests_follow_the_settings_of_the_machine(
    scaffold: Callable[..., Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APICTL_PORT", "9090")
    monkeypatch.setenv("APICTL_SHUTDOWN_TIMEOUT", "25")
    monkeypatch.setenv("APICTL_DB_POOL_MAX", "7")
    monkeypatch.setenv("APICTL_DOCS", "true")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db.internal:5432/app")
    rendered = scaffold("--max-replicas", "6")
    manifests = rendered.manifests()
    data = manifests["ConfigMap"]["data"]
    assert (data["APICTL_PORT"], data["APICTL_SHUTDOWN_TIMEOUT"]) == ("9090", "25")
    assert (data["APICTL_DB_POOL_MAX"], data["APICTL_DOCS"]) == ("7", "true")
    assert container(manifests["Deployment"])["ports"][0]["containerPort"] == 9090
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 25
    assert ("EXPOSE", "9090") in rendered.dockerfile()
    assert "6 x 7 = 42 connections" in (rendered.k8s / "hpa.yaml").read_text()
    written = "".join(path.read_text() for path in rendered.out.rglob("*") if path.is_file())
    assert "hunter2" not in written
    assert "db.internal" not in written


def test_job_migrates_with_the_deployment_image(scaffold: Callable[..., Rendered]) -> None:
    manifests = scaffold("--image", "shop:7").manifests()
    job = manifests["Job"]
    migrate = container(job)
    assert migrate["command"] == ["apictl", "migrate"]
    assert migrate["image"] == container(manifests["Deployment"])["image"] == "shop:7"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_service_and_autoscaler_target_the_api_pods(scaffold: Callable[..., Rendered]) -> None:
    manifests = scaffold("--name", "shop", "--replicas", "3").manifests()
    deployment, service, hpa = (
        manifests[kind] for kind in ("Deployment", "Service", "HorizontalPodAutoscaler")
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    migrate_labels = manifests["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= migrate_labels.items()  # the migration pod gets no traffic
    budget = manifests["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not budget["selector"]["matchLabels"].items() <= migrate_labels.items()
    assert budget["maxUnavailable"] == 1
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "shop",
    }  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count


def test_dockerfile_is_multi_stage_unprivileged_and_checks_health(
    scaffold: Callable[..., Rendered],
) -> None:
    instructions = scaffold().dockerfile()
    arguments: dict[str, list[str]] = {}
    for word, args in instructions:
        arguments.setdefault(word, []).append(args)
    assert len(arguments["FROM"]) >= 2
    user = arguments["USER"][-1].split(":")[0]
    assert user.isdigit()  # numeric, so runAsNonRoot can verify it
    assert int(user) != 0
    assert any("PATH=/opt/venv/bin:$PATH" in env for env in arguments["ENV"])  # $$ escaped
    assert "APICTL_ENV=production APICTL_HOST=0.0.0.0" in " ".join(arguments["ENV"])
    healthcheck = json.loads(arguments["HEALTHCHECK"][0].split(" CMD ", 1)[1])
    assert healthcheck[:3] == ["apictl", "check", "health"]
    assert healthcheck[healthcheck.index("--url") + 1] == "http://127.0.0.1:8080"
    assert arguments["STOPSIGNAL"] == ["SIGTERM"]
    assert json.loads(arguments["CMD"][-1]) == ["apictl", "serve"]  # exec form: PID 1 gets SIGTERM


def test_dockerfile_installs_the_locked_dependencies_then_the_wheel_alone(
    scaffold: Callable[..., Rendered],
) -> None:
    (install,) = [args for word, args in scaffold().dockerfile() if "/opt/venv/bin/pip" in args]
    assert "source=/src/requirements" in install
    steps = [step.strip() for step in install.split("&&")]
    assert "/opt/venv/bin/pip install --require-hashes -r /requirements/app.txt" in steps
    assert steps[-1] == "/opt/venv/bin/pip install --no-deps /dist/*.whl"
    assert (ROOT / "requirements" / "app.txt").is_file()  # the lock the build context sends


@pytest.mark.parametrize(
    ("args", "base"),
    [
        ([], "python:3.12-slim"),
        (["--python-image", "registry.example.com/py:3.13"], "registry.example.com/py:3.13"),
    ],
)
def test_python_image_is_the_default_of_the_build_argument_both_stages_use(
    scaffold: Callable[..., Rendered], args: list[str], base: str
) -> None:
    instructions = scaffold(*args).dockerfile()
    words = [word for word, _ in instructions]
    arg = instructions[words.index("ARG")]
    assert words.index("ARG") < words.index("FROM")  # a FROM line can use it only then
    assert arg == ("ARG", f"PYTHON_IMAGE={base}")
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_bad_python_image_is_one_line_with_a_hint(apictl: Apictl, tmp_path: Path) -> None:
    result = apictl("scaffold", "deploy", "--out", str(tmp_path / "p"), "--python-image", " ")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: invalid --python-image ' '",
        "hint: use an image reference such as python:3.12-slim or registry.example.com/python:3.12",
    ]


def test_dockerignore_keeps_secrets_and_local_state_out(scaffold: Callable[..., Rendered]) -> None:
    patterns = set((scaffold().out / ".dockerignore").read_text().splitlines())
    assert {".env", ".venv", ".apictl", ".git", "**/__pycache__", "tests", "bench"} <= patterns
    assert not {"migrations", "templates", "README.md", "pyproject.toml", "requirements"} & patterns


def test_existing_files_are_kept_and_nothing_is_written(apictl: Apictl, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    result = apictl("scaffold", "deploy", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "already exist; nothing written:\n  Dockerfile\n" in result.stderr
    assert "--force" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["Dockerfile"]


def test_force_overwrites(apictl: Apictl, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM mine\n")
    result = apictl("scaffold", "deploy", "--out", str(tmp_path), "--force")
    assert result.returncode == 0, result.stderr
    assert "overwrote Dockerfile" in result.stdout
    assert "FROM mine" not in (tmp_path / "Dockerfile").read_text()
    assert (tmp_path / "deploy" / "k8s" / "deployment.yaml").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "Shop"],
        ["--name", "-shop"],
        ["--name", "shop_api"],
        ["--name", "a" * 56],
        ["--name", "shop\n"],
        ["--image", "shop:1 #"],
        ["--python-image", ""],
        ["--python-image", "python 3.12"],
        ["--python-image=-python"],
        ["--python-image", "python:3.12\nRUN id"],
        ["--python-image", "${BASE}"],
        ["--replicas", "3", "--max-replicas", "2"],
        ["--replicas", "0"],
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    apictl: Apictl, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "project"
    result = apictl("scaffold", "deploy", "--out", str(out), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_longest_name_leaves_a_valid_job_name(scaffold: Callable[..., Rendered]) -> None:
    job = scaffold("--name", "a" * 55).manifests()["Job"]
    assert len(job["metadata"]["name"]) == 63  # the limit of a DNS-1123 label


def test_help_says_what_it_writes(apictl: Apictl) -> None:
    assert "deploy" in apictl("scaffold", "--help").stdout
    text = apictl("scaffold", "deploy", "--help").stdout
    for word in (
        "Dockerfile", "HorizontalPodAutoscaler", "--force", "--replicas", "--image",
        "--python-image",
    ):  # fmt: skip
        assert word in text


# The oldest Kubernetes release still in support when this was written, and the newest the
# installed kubernetes-validate knows (its schemas are bundled: no network)
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_the_kubernetes_schemas_in_strict_mode(
    scaffold: Callable[..., Rendered], version: str
) -> None:
    rendered = scaffold("--name", "shop", "--replicas", "3")
    documents = [*rendered.manifests().values(), rendered.secret_example()]
    assert len(documents) == len(APPLIED) + 1
    for document in documents:
        # strict: a field the schema does not define (a typo, a wrong level) is an error
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_refuses_a_field_kubernetes_does_not_know(
    scaffold: Callable[..., Rendered],
) -> None:
    deployment = scaffold().manifests()["Deployment"]
    container(deployment)["livenesProbe"] = container(deployment).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
