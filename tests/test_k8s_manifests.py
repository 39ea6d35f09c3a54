"""The Kubernetes manifests (deploy/k8s) render with kustomize and hold, checked offline:
Kubernetes' own schemas (kubernetes-validate, strict: an unknown field fails), KEDA's CRD
schema for the ScaledObjects, and the rules the platform needs of them. The tools come from
deploy/k8s/install-tools.sh (`make install`); without them these tests fail."""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tests.test_compose import strings

from events import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
INSTALL_TOOLS = K8S / "install-tools.sh"
K8S_README = K8S / "README.md"
TOOLS = ROOT / ".local" / "tools"
KUSTOMIZE = TOOLS / "bin" / "kustomize"
TREES = ["base", "overlays/dev", "overlays/production"]
# The oldest Kubernetes the manifests claim (deploy/k8s/README.md) and the newest known.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
NAMESPACE = "provisioning"
PART_OF = "provisioning-platform"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
# Variables whose value is a secret wherever it is set: only ever from a Secret.
SECRET_VARIABLES = re.compile(r"DATABASE_URL$|^TARGET_SERVERS$|PASSWORD|SECRET|TOKEN|DSN")
# Read by the OpenTelemetry SDK, or the downward API's inputs to them; not Settings fields.
NON_SETTINGS_VARIABLES = re.compile(r"^OTEL_[A-Z_]+$|^POD_NAME$")
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")


@dataclass(frozen=True)
class App:
    name: str
    module: str
    port: int
    # Scaled on CPU by an HPA (its load is HTTP), or on consumer lag by KEDA.
    scaled_on_lag: bool


APPS = [
    App("request-api", "request_api", 8000, scaled_on_lag=False),
    App("validator", "validator", 8001, scaled_on_lag=True),
    App("allocator", "allocator", 8002, scaled_on_lag=True),
    App("configurator", "configurator", 8003, scaled_on_lag=True),
    App("deployer", "deployer", 8004, scaled_on_lag=True),
    App("auditor", "auditor", 8005, scaled_on_lag=True),
]
each_tree = pytest.mark.parametrize("tree", TREES)
each_app = pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])

Doc = dict[str, Any]


def pinned(variable: str) -> str:
    """A version pinned in install-tools.sh, so that the test and the install agree."""
    found = re.search(rf"^{variable}=(\S+)$", INSTALL_TOOLS.read_text(), re.MULTILINE)
    assert found, f"{variable} missing from {INSTALL_TOOLS}"
    return found.group(1)


def keda_crd_file() -> Path:
    return TOOLS / "keda" / pinned("KEDA_VERSION") / "keda.sh_scaledobjects.yaml"


def require_tool(path: Path) -> None:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make install`", pytrace=False)


@functools.cache
def render(tree: str) -> tuple[Doc, ...]:
    require_tool(KUSTOMIZE)
    built = subprocess.run(
        [str(KUSTOMIZE), "build", str(K8S / tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, f"kustomize build {tree} failed:\n{built.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


def docs_of(tree: str, kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in render(tree) if doc["kind"] == kind}


def deployment(tree: str, app: App) -> Doc:
    return docs_of(tree, "Deployment")[app.name]


def container(workload: Doc) -> Doc:
    containers: list[Doc] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container a pod"
    return containers[0]


def config_map(tree: str, name: str) -> Doc:
    """A generated ConfigMap, found by the name it has before kustomize appends its hash."""
    found = [
        doc
        for generated, doc in docs_of(tree, "ConfigMap").items()
        if re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", generated)
    ]
    assert len(found) == 1, f"one ConfigMap {name} expected in {tree}"
    return found[0]


def partitions(tree: str) -> int:
    return int(config_map(tree, "kafka-topics")["data"]["KAFKA_TOPIC_PARTITIONS"])


def environment(tree: str, workload: Doc) -> dict[str, Doc]:
    """Every variable the container gets: from its ConfigMaps (as `value`) and its `env`."""
    spec = container(workload)
    variables: dict[str, Doc] = {}
    for source in spec.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "only ConfigMaps by envFrom (Secrets by key)"
        data = docs_of(tree, "ConfigMap")[source["configMapRef"]["name"]]["data"]
        variables.update({name: {"name": name, "value": value} for name, value in data.items()})
    variables.update({variable["name"]: variable for variable in spec.get("env", [])})
    return variables


def option(command: list[str], flag: str) -> str:
    """The value of `--flag=value` or `--flag value` in an argv list."""
    for index, argument in enumerate(command):
        if argument == flag:
            return command[index + 1]
        if argument.startswith(f"{flag}="):
            return argument.split("=", 1)[1]
    raise AssertionError(f"{flag} missing from {command}")


def quantity(text: str | int) -> float:
    """A Kubernetes resource quantity (`500m`, `2`, `384Mi`, `1Gi`) as a number."""
    factors = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    assert match, f"unexpected quantity {text!r}"
    return float(match.group(1)) * factors.get(match.group(2) or "", 1)


def secret_mounts(workload: Doc) -> dict[PurePosixPath, str]:
    """Each mount path of a Secret volume, with the Secret's name."""
    volumes = workload["spec"]["template"]["spec"].get("volumes", [])
    secrets = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
    return {
        PurePosixPath(mount["mountPath"]): secrets[mount["name"]]
        for mount in container(workload).get("volumeMounts", [])
        if mount["name"] in secrets
    }


def secret_names(tree: str) -> set[str]:
    names: set[str] = set()
    for workload in docs_of(tree, "Deployment").values():
        names.update(secret_mounts(workload).values())
        for variable in container(workload).get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                names.add(reference["name"])
    return names


def settings_class(app: App) -> type[ServiceSettings]:
    found: type[ServiceSettings] = importlib.import_module(f"{app.module}.settings").Settings
    return found


def consumed_topics(app: App) -> set[str]:
    topics: set[str] = importlib.import_module(f"{app.module}.handlers").router.topics()
    return topics


def autoscalers_of(tree: str, app: App) -> list[Doc]:
    """The HPAs and ScaledObjects that scale the app's Deployment."""
    found = []
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for doc in docs_of(tree, kind).values():
            target = doc["spec"]["scaleTargetRef"]
            if target.get("kind", "Deployment") == "Deployment" and target["name"] == app.name:
                found.append(doc)
    return found


@functools.cache
def strict_keda_schema() -> Doc:
    """The ScaledObject's openAPIV3Schema, with unknown fields refused as the API server's
    strict field validation refuses them (a structural schema would only drop them)."""
    require_tool(keda_crd_file())
    crd = yaml.safe_load(keda_crd_file().read_text())
    assert (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == ("keda.sh", "ScaledObject")
    (served,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1alpha1"]
    assert served["served"]
    schema: Doc = copy.deepcopy(served["schema"]["openAPIV3Schema"])

    def close(node: object) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


# Schemas


@each_tree
def test_every_document_matches_the_kubernetes_schemas(tree: str) -> None:
    problems = []
    for doc in render(tree):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(part) for part in error.path)
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                problems.append(f"{name} ({version}): {where}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(error.message)
    assert not problems, "\n".join(problems)


@each_tree
def test_scaled_objects_match_kedas_crd(tree: str) -> None:
    validator = jsonschema.Draft202012Validator(strict_keda_schema())
    scaled = docs_of(tree, "ScaledObject")
    assert scaled
    problems = [
        f"ScaledObject/{name}: {'.'.join(str(p) for p in error.path)}: {error.message}"
        for name, doc in scaled.items()
        for error in validator.iter_errors(doc)
    ]
    assert not problems, "\n".join(problems)
    assert {doc["apiVersion"] for doc in scaled.values()} == {"keda.sh/v1alpha1"}


def test_strict_schemas_refuse_an_unknown_field() -> None:
    """The two validations above would pass anything if they were not strict."""
    workload = copy.deepcopy(deployment("base", APPS[0]))
    container(workload)["readinesProbe"] = container(workload)["readinessProbe"]
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(workload, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(next(iter(docs_of("base", "ScaledObject").values())))
    scaled["spec"]["maxReplicas"] = 3
    errors = list(jsonschema.Draft202012Validator(strict_keda_schema()).iter_errors(scaled))
    assert any("maxReplicas" in error.message for error in errors)


# What every object shares


@each_tree
def test_everything_is_labelled_and_in_the_platforms_namespace(tree: str) -> None:
    assert set(docs_of(tree, "Namespace")) == {NAMESPACE}
    for doc in render(tree):
        metadata = doc["metadata"]
        assert metadata["labels"][PART_OF_LABEL] == PART_OF, metadata["name"]
        if doc["kind"] != "Namespace":
            assert metadata["namespace"] == NAMESPACE, metadata["name"]
        if doc["kind"] not in {"Namespace", "ConfigMap"}:
            assert NAME_LABEL in metadata["labels"], f"{doc['kind']}/{metadata['name']}"


@each_tree
def test_no_secret_is_written_into_the_manifests(tree: str) -> None:
    """Secrets are created beside the manifests (deploy/k8s/README.md), never in them."""
    assert not docs_of(tree, "Secret")
    for doc in docs_of(tree, "ConfigMap").values():
        for name, value in doc["data"].items():
            assert not SECRET_VARIABLES.search(name), f"{name} belongs in a Secret"
            assert not URL_WITH_PASSWORD.search(value), f"{name} holds a password"
            assert "PRIVATE KEY" not in value
    for text in strings([doc for doc in render(tree) if doc["kind"] != "ConfigMap"]):
        assert not URL_WITH_PASSWORD.search(text), text


@each_tree
def test_every_secret_referenced_is_documented(tree: str) -> None:
    documented = K8S_README.read_text()
    missing = {name for name in secret_names(tree) if f"secret generic {name} " not in documented}
    assert not missing, f"no `kubectl create secret` for {missing} in {K8S_README}"


# Deployments


@each_tree
def test_every_service_runs_from_one_image_and_each_workload_is_a_service(tree: str) -> None:
    workloads = docs_of(tree, "Deployment")
    assert set(workloads) == {app.name for app in APPS}
    images = {container(workload)["image"] for workload in workloads.values()}
    images |= {container(job)["image"] for job in docs_of(tree, "Job").values()}
    assert len(images) == 1


@each_tree
@each_app
def test_deployment_runs_its_app_factory_on_its_port(tree: str, app: App) -> None:
    spec = container(deployment(tree, app))
    command = spec["command"]
    assert command[:3] == ["uvicorn", "--factory", f"{app.module}.app:create_app"]
    assert importlib.util.find_spec(f"{app.module}.app") is not None
    assert option(command, "--host") == "0.0.0.0"
    assert option(command, "--port") == str(app.port)
    assert spec["ports"] == [{"name": "http", "containerPort": app.port}]


@each_tree
@each_app
def test_deployment_probes_health_and_readiness(tree: str, app: App) -> None:
    spec = container(deployment(tree, app))
    port_names = {port["name"] for port in spec["ports"]}
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        assert spec[probe]["httpGet"]["path"] == path, probe
        assert spec[probe]["httpGet"]["port"] in port_names, probe


@each_tree
@each_app
def test_deployment_requests_and_limits_cpu_and_memory(tree: str, app: App) -> None:
    resources = container(deployment(tree, app))["resources"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert 0 < quantity(request) <= quantity(limit), resource


@each_tree
@each_app
def test_deployment_runs_unprivileged_on_a_read_only_root(tree: str, app: App) -> None:
    workload = deployment(tree, app)
    pod = workload["spec"]["template"]["spec"]
    spec = container(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
    writable = {PurePosixPath(mount["mountPath"]) for mount in spec["volumeMounts"]}
    assert PurePosixPath("/tmp") in writable


@each_tree
@each_app
def test_deployment_stops_gracefully_within_its_grace_period(tree: str, app: App) -> None:
    workload = deployment(tree, app)
    spec = container(workload)
    pause = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(option(spec["command"], "--timeout-graceful-shutdown"))
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause + drain


@each_tree
@each_app
def test_autoscaled_deployment_leaves_its_replica_count_to_the_autoscaler(
    tree: str, app: App
) -> None:
    """A `replicas` in the manifest would reset the count on every apply."""
    assert "replicas" not in deployment(tree, app)["spec"]


# Configuration and secrets


@each_tree
@each_app
def test_environment_names_are_settings_fields(tree: str, app: App) -> None:
    """The Settings ignore unknown variables, so a misspelt name would pass silently."""
    fields = settings_class(app).model_fields
    names = set(environment(tree, deployment(tree, app)))
    assert {name for name in names if not NON_SETTINGS_VARIABLES.match(name)} <= {
        name.upper() for name in fields
    }
    assert {name.upper() for name, field in fields.items() if field.is_required()} <= names


@each_tree
@each_app
def test_environment_builds_valid_settings(
    tree: str, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Literal values parse (SERVER_POOL's JSON, numbers); those from Secrets get stand-ins."""
    cls = settings_class(app)
    for name in cls.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, variable in environment(tree, deployment(tree, app)).items():
        if "value" in variable:
            monkeypatch.setenv(name, variable["value"])
        elif "secretKeyRef" in variable["valueFrom"]:
            annotation = cls.model_fields[name.lower()].annotation
            monkeypatch.setenv(name, "{}" if annotation not in (str, str | None) else "secret")
    settings = cls()
    assert settings.service_name == app.name
    platform = config_map(tree, "platform")["data"]
    assert settings.kafka_bootstrap_servers == platform["KAFKA_BOOTSTRAP_SERVERS"]
    assert environment(tree, deployment(tree, app))["OTEL_SERVICE_NAME"]["value"] == app.name


@each_tree
@each_app
def test_secrets_only_by_reference(tree: str, app: App) -> None:
    workload = deployment(tree, app)
    mounts = secret_mounts(workload)
    for name, variable in environment(tree, workload).items():
        if SECRET_VARIABLES.search(name):
            assert "secretKeyRef" in variable.get("valueFrom", {}), f"{name} is not from a Secret"
        if name.endswith("KEY_FILE"):
            path = PurePosixPath(variable["value"])
            assert any(path.is_relative_to(mount) for mount in mounts), f"{name}: no Secret there"
        if "value" in variable:
            assert not URL_WITH_PASSWORD.search(variable["value"]), name
    for mount in container(workload)["volumeMounts"]:
        if PurePosixPath(mount["mountPath"]) in mounts:
            assert mount.get("readOnly") is True


@each_tree
def test_database_urls_and_key_files_where_each_service_needs_them(tree: str) -> None:
    names = {app.name: set(environment(tree, deployment(tree, app))) for app in APPS}
    for app in APPS:
        # Each runs as its own login; the owner's is for its migrations only.
        assert "DATABASE_URL" in names[app.name]
        assert "SCHEMA_DATABASE_URL" not in names[app.name]
    assert {"CHAIN_KEY_FILE", "SIGNING_KEY_FILE"} <= names["auditor"]
    assert "CREDENTIALS_KEY_FILE" in names["deployer"]
    assert "WEBHOOK_KEY_FILE" in names["request-api"]


@each_tree
@each_app
def test_migrations_run_as_the_owner_before_the_service_starts(tree: str, app: App) -> None:
    """An init container per pod: the service's history (and the request-api's, the API
    keys'), from the one image, hardened as the app, the owner's URL only there."""
    pod = deployment(tree, app)["spec"]["template"]["spec"]
    histories = {f"{app.module}.migrations"}
    if app.name == "request-api":
        histories.add("request_api.identity_migrations")
    inits = pod["initContainers"]
    assert {init["command"][-1] for init in inits} == histories
    for init in inits:
        assert init["command"][:4] == ["python", "-m", "events.migrations", "upgrade"]
        assert importlib.util.find_spec(init["command"][-1]) is not None
        assert init["image"] == container(deployment(tree, app))["image"]
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        assert init["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert quantity(init["resources"]["requests"]["cpu"]) > 0
        variables = {variable["name"]: variable for variable in init["env"]}
        owner = variables["SCHEMA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert owner["name"] == f"{app.name}-secrets"
        if init["command"][-1].endswith(".identity_migrations"):
            assert owner["key"] == "IDENTITY_SCHEMA_DATABASE_URL"
        else:
            assert owner["key"] == "SCHEMA_DATABASE_URL"
            assert variables["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"


@each_tree
def test_auditor_keeps_its_checkpoints_on_a_shared_volume(tree: str) -> None:
    workload = docs_of(tree, "Deployment")["auditor"]
    checkpoint = PurePosixPath(environment(tree, workload)["CHECKPOINT_FILE"]["value"])
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in workload["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in volume
    }
    (mount,) = [
        m for m in container(workload)["volumeMounts"] if checkpoint.is_relative_to(m["mountPath"])
    ]
    claim = docs_of(tree, "PersistentVolumeClaim")[claims[mount["name"]]]
    # Every replica appends to (and /verify reads) the same file, under the sealing lock.
    if tree != "overlays/dev":
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


# Services, disruption budgets, autoscaling


@each_tree
@each_app
def test_service_selects_its_deployments_pods_only(tree: str, app: App) -> None:
    service = docs_of(tree, "Service")[app.name]
    selector = service["spec"]["selector"].items()
    for workload in docs_of(tree, "Deployment").values():
        labels = workload["spec"]["template"]["metadata"]["labels"].items()
        assert (selector <= labels) == (workload["metadata"]["name"] == app.name)
    (port,) = service["spec"]["ports"]
    assert port["port"] == app.port
    assert port["targetPort"] in {p["name"] for p in container(deployment(tree, app))["ports"]}


@each_tree
@each_app
def test_deployment_has_a_disruption_budget(tree: str, app: App) -> None:
    labels = deployment(tree, app)["spec"]["template"]["metadata"]["labels"].items()
    budgets = [
        pdb
        for pdb in docs_of(tree, "PodDisruptionBudget").values()
        if pdb["spec"]["selector"]["matchLabels"].items() <= labels
    ]
    assert len(budgets) == 1
    assert {"maxUnavailable", "minAvailable"} & set(budgets[0]["spec"])


@each_tree
@each_app
def test_deployment_has_exactly_one_autoscaler(tree: str, app: App) -> None:
    """KEDA makes an HPA of its own: an HPA beside a ScaledObject would fight it."""
    (autoscaler,) = autoscalers_of(tree, app)
    expected = "ScaledObject" if app.scaled_on_lag else "HorizontalPodAutoscaler"
    assert autoscaler["kind"] == expected


@each_tree
def test_http_service_scales_on_cpu(tree: str) -> None:
    (hpa,) = autoscalers_of(tree, APPS[0])
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]


@each_tree
@pytest.mark.parametrize("app", [a for a in APPS if a.scaled_on_lag], ids=lambda a: a.name)
def test_consumer_scales_on_the_lag_of_its_group_within_the_partitions(tree: str, app: App) -> None:
    (scaled,) = autoscalers_of(tree, app)
    spec = scaled["spec"]
    # Never zero: every service also serves HTTP and relays its outbox.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # A group gives each partition to one member: more replicas than partitions sit idle.
    assert spec["maxReplicaCount"] <= partitions(tree)
    topics = set()
    variables = environment(tree, deployment(tree, app))
    for trigger in spec["triggers"]:
        metadata = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert metadata["consumerGroup"] == app.name  # events.consumer: group_id=service
        assert metadata["bootstrapServersFromEnv"] in variables
        assert metadata["offsetResetPolicy"] == "earliest"  # as the consumer's
        assert metadata["allowIdleConsumers"] == "false"
        assert int(metadata["lagThreshold"]) > 0
        topics.add(metadata["topic"])
    assert topics == consumed_topics(app)


@each_tree
def test_topics_job_creates_topics_with_the_configured_partitions(tree: str) -> None:
    jobs = docs_of(tree, "Job")
    if tree == "overlays/production":
        assert not jobs  # topics come from the Kafka operator there
        return
    variables = environment(tree, jobs["kafka-topics"])
    reference = variables["KAFKA_TOPIC_PARTITIONS"]["valueFrom"]["configMapKeyRef"]
    assert reference["name"] == config_map(tree, "kafka-topics")["metadata"]["name"]
    command = container(jobs["kafka-topics"])["command"]
    assert "ensure_topics" in command[-1]
    assert "KAFKA_TOPIC_PARTITIONS" in command[-1]
