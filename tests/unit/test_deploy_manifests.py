"""deploy/: the Compose file, the image, the instance file and the Helm values, checked here.

Nothing in deploy/ is started by the tests (no container runtime on the test machines): the
Compose file is validated against the Compose specification that check-jsonschema ships, the
instance file against Dagster's own instance schema, and the Helm values against hand-written
expectations taken from the official chart's values models (the chart's JSON schema needs the
chart's defaults merged in, which are not part of this repository). The wiring between them (one
gRPC port and location name everywhere, every secret from the environment) is checked as data.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from fin_resources.locations import DAGSTER_EVENT_SETTINGS
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
GRPC_PORT = "4000"
LOCATION = "fin_mlops"
DAGSTER_SERVICES = {"user_code", "webserver", "daemon"}
#: Variables whose values are secrets: each must be interpolated from the environment, required.
SECRETS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FIN_PII_KEY"}
#: A URL with a literal password (``scheme://user:secret@host``), not ``${VAR}`` interpolation.
LITERAL_CREDENTIAL = re.compile(r"://[^\s:/@]*:(?!\$\{)[^\s@]+@")


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return value if isinstance(value, list) else str(value).split()


def test_compose_file_follows_the_compose_specification() -> None:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load("compose.yaml"))
    ]
    assert errors == []


def test_compose_runs_every_service_of_the_production_topology() -> None:
    services = load("compose.yaml")["services"]
    assert set(services) == {"postgres", "redis", "mlflow"} | DAGSTER_SERVICES
    # One image, built once from the repository, for the code server and every Dagster process.
    assert services["user_code"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    images = {services[name]["image"] for name in DAGSTER_SERVICES | {"mlflow"}}
    assert images == {"fin-mlops:${FIN_IMAGE_TAG:-dev}"}
    # Only the two UIs are published, and only on loopback.
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"mlflow": ["127.0.0.1:5000:5000"], "webserver": ["127.0.0.1:3000:3000"]}


def test_webserver_and_daemon_reach_the_code_location_the_image_serves() -> None:
    services = load("compose.yaml")["services"]
    served = command(services["user_code"])
    assert served[:5] == ["dagster", "api", "grpc", "--module-name", "fin_assets.definitions"]
    assert served[served.index("--port") + 1] == GRPC_PORT
    assert served[served.index("--location-name") + 1] == LOCATION
    (entry,) = load("workspace.yaml")["load_from"]
    assert entry == {
        "grpc_server": {"host": "user_code", "port": int(GRPC_PORT), "location_name": LOCATION}
    }
    for name in ("webserver", "daemon"):
        args = command(services[name])
        assert args[args.index("--workspace") + 1] == "/opt/fin/workspace.yaml", name
        assert services[name]["depends_on"] == {"user_code": {"condition": "service_healthy"}}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/workspace.yaml /opt/fin/workspace.yaml" in dockerfile
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in dockerfile
    (cmd,) = re.findall(r"^CMD (\[.*?\])$", dockerfile.replace("\\\n", ""), flags=re.M | re.S)
    assert json.loads(cmd) == served


def test_every_dagster_process_shares_one_instance_and_the_code_gets_every_store() -> None:
    services = load("compose.yaml")["services"]
    instance = {
        "DAGSTER_HOME": "/opt/dagster/dagster_home",
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_USER": "${POSTGRES_USER:-fin}",
        "DAGSTER_PG_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}",
        "DAGSTER_PG_DB": "dagster",
    }
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert {k: env.get(k) for k in instance} == instance, name
    code = services["user_code"]["environment"]
    assert code["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert code["FIN_AUDIT_URL"].endswith("@postgres:5432/audit")
    assert code["FIN_ONLINE_STORE_URL"].endswith("@redis:6379/0")
    # The audit chain's witness is on a volume of its own, never beside the audit store.
    assert "audit_witness:/opt/fin/witness" in services["user_code"]["volumes"]
    assert code["FIN_WITNESS_PATH"].startswith("/opt/fin/witness/")


def test_no_secret_is_written_in_any_deploy_file() -> None:
    services = load("compose.yaml")["services"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            if key in SECRETS or "@" in text or "PASSWORD" in key:
                assert re.search(
                    r"\$\{(POSTGRES_PASSWORD|REDIS_PASSWORD|FIN_PII_KEY):\?", text
                ) or (key == "DAGSTER_PG_USER"), (
                    f"{name}.{key} = {text!r} is not taken from the environment"
                )
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert not LITERAL_CREDENTIAL.search(text), f"{path.name} holds a literal credential"
            assert not re.search(
                r"(?im)^\s*(postgresqlPassword|password)[ \t]*:[ \t]*[^\s{]", text
            ), path.name
    redis_command = " ".join(command(services["redis"]))
    assert "$$REDIS_PASSWORD" in redis_command and "${REDIS_PASSWORD" not in redis_command


def test_the_instance_file_is_valid_and_reads_credentials_from_the_environment() -> None:
    config, instance_class = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert instance_class is None or issubclass(instance_class, dg.DagsterInstance)
    database = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in database.items() if isinstance(v, dict)} == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"] == {
        "runs": {"max_concurrent_runs": 4},
        "pools": {"default_limit": 1, "granularity": "op"},
    }


#: Keys the official chart's models accept (helm/dagster/schema in dagster-io/dagster, 1.13).
K8S_RUN_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}
K8S_RUN_LAUNCHER_REQUIRED = {
    "imagePullPolicy",
    "loadInclusterConfig",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
}
RUN_K8S_CONFIG_KEYS = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
USER_DEPLOYMENT_KEYS = {
    "name",
    "image",
    "port",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
}
CONCURRENCY = {
    "enabled": bool,
    "pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
}
TOP_LEVEL_KEYS = {
    "global",
    "dagsterWebserver",
    "generatePostgresqlPasswordSecret",
    "postgresql",
    "dagster-user-deployments",
    "runLauncher",
    "dagsterDaemon",
    "concurrency",
    "telemetry",
}


def test_helm_values_launch_runs_as_kubernetes_jobs_on_the_charts_keys() -> None:
    values = load("helm/values.yaml")
    assert set(values) <= TOP_LEVEL_KEYS
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]) == {"k8sRunLauncher"}
    k8s = launcher["config"]["k8sRunLauncher"]
    assert K8S_RUN_LAUNCHER_REQUIRED <= set(k8s) <= K8S_RUN_LAUNCHER_KEYS
    assert k8s["imagePullPolicy"] in {"Always", "IfNotPresent", "Never"}
    assert set(k8s["runK8sConfig"]) <= RUN_K8S_CONFIG_KEYS
    assert k8s["envSecrets"] == [{"name": "fin-mlops-secrets"}]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    # Run limits live in `concurrency` alone: Dagster refuses them in both places.
    assert "maxConcurrentRuns" not in coordinator["config"]["queuedRunCoordinator"]
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert set(concurrency["pools"]) <= CONCURRENCY["pools"]
    assert set(concurrency["runs"]) <= CONCURRENCY["runs"]
    assert concurrency["runs"]["maxConcurrentRuns"] == 4
    assert concurrency["pools"] == {"defaultLimit": 1, "granularity": "op"}


def test_helm_user_code_serves_the_definitions_with_step_isolation_and_no_secret() -> None:
    values = load("helm/values.yaml")
    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] is True
    (deployment,) = user_code["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "fin_assets.definitions"]
    assert set(deployment["image"]) == {"repository", "tag", "pullPolicy"}
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["FIN_DAGSTER_EXECUTOR"] == "k8s_job"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert deployment["envSecrets"] == [{"name": "fin-mlops-secrets"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    # The instance's database password comes from a Secret the operator creates.
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"] == {"postgresqlSecretName": "fin-dagster-postgresql"}
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]


def test_k8s_job_executor_isolates_steps_when_chosen(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fin_assets.definitions import defs
    from fin_assets.lib.common.names import BUILD_FEATURES_JOB, DAILY_PIPELINE_JOB

    assert (
        defs().resolve_job_def(DAILY_PIPELINE_JOB).executor_def.name
        == "multi_or_in_process_executor"
    )
    monkeypatch.setenv("FIN_DAGSTER_EXECUTOR", "k8s_job")
    for job in (DAILY_PIPELINE_JOB, BUILD_FEATURES_JOB):
        assert defs().resolve_job_def(job).executor_def.name == "k8s"
    monkeypatch.setenv("FIN_DAGSTER_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="FIN_DAGSTER_EXECUTOR='celery': expected one of"):
        defs()


def test_every_process_that_writes_run_events_batches_them_alike() -> None:
    expected = dict(DAGSTER_EVENT_SETTINGS)
    services = load("compose.yaml")["services"]
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert {k: env.get(k) for k in expected} == expected, name
    values = load("helm/values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    code_env = {item["name"]: item["value"] for item in deployment["env"]}
    assert {k: code_env.get(k) for k in expected} == expected
    for component in ("dagsterWebserver", "dagsterDaemon"):
        assert {k: values[component]["env"].get(k) for k in expected} == expected, component
    makefile = (REPO / "Makefile").read_text()
    for name, value in expected.items():
        assert f"export {name} ?= {value}\n" in makefile
