"""The Helm chart, checked offline with the tools a cluster would use.

- Helm's own Go SDK (helm-python-sdk) renders and lints the chart and enforces
  values.schema.json, with default, production-like and Postgres values.
- kubernetes-validate checks every rendered manifest against the Kubernetes 1.33 schemas in
  strict mode (unknown fields fail).
- Dagster loads the rendered dagster.yaml with its own instance-config validation, and every
  configurable class in it (run launcher, run coordinator, compute logs) validates its config.
- The real ``K8sRunLauncher``, built from that dagster.yaml, launches a run of
  ``five_minute_job``; the ``V1Job`` it would send to the API server is captured and validated.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.run_jobs import daemon_selector, run_selector

helm_python = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytest.importorskip("dagster_k8s")

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "crypto-data-platform"
PRODUCTION_VALUES_FILE = CHART_DIR / "ci" / "production-values.yaml"
K8S_VERSION = "1.33.0"
RELEASE = "cdp"
NAMESPACE = "crypto"
FULLNAME = f"{RELEASE}-crypto-data-platform"

# Environment variables that carry credentials: they may only come from a Secret.
SECRET_ENV_NAMES = {
    "CRYPTO_DB_URL",
    "DAGSTER_MYSQL_URL",
    "DAGSTER_PG_URL",
    "COINGECKO_API_KEY",
    "GUARDIAN_API_KEY",
    "REDDIT_CLIENT_ID",
    "REDDIT_CLIENT_SECRET",
    "FRED_API_KEY",
    "CRYPTO_API_KEYS",
    "CRYPTO_ALERT_WEBHOOK_URL",
    "REDIS_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# ------------------------------------------------------------------------------------------
# Rendering helpers
# ------------------------------------------------------------------------------------------


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES_FILE.read_text())


def postgres_values() -> dict[str, Any]:
    return {
        "dagster": {"storage": {"type": "postgres"}},
        "apiGateway": {"autoscaling": {"enabled": False}, "replicaCount": 2},
        "ingress": {"enabled": True, "webserver": {"host": "dagster.internal"}},
    }


VALUE_SETS = {
    "default": dict,
    "production": production_values,
    "postgres": postgres_values,
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    loaded = helm_python.Chart.load(CHART_DIR)
    try:
        yield loaded
    finally:
        loaded.close()


def render(
    chart: Any, values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """Render the chart and return its Kubernetes objects (NOTES.txt left out)."""
    rendered = chart.render(values or {}, name=name, namespace=namespace)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(
    objects: list[dict[str, Any]], kind: str, name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def instance_yaml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objects, "ConfigMap", f"{FULLNAME}-dagster-instance")
    return yaml.safe_load(cm["data"]["dagster.yaml"])


def validate_strict(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# ------------------------------------------------------------------------------------------
# Lint and render
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_chart_lints_clean(value_set: str) -> None:
    report = helm_python.lint(
        CHART_DIR,
        VALUE_SETS[value_set](),
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{K8S_VERSION}",
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert report["messages"] == [], report["messages"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_validates_against_kubernetes_schemas(chart: Any, value_set: str) -> None:
    objects = render(chart, VALUE_SETS[value_set]())
    assert objects
    for obj in objects:
        # Raises ValidationError (bad field) or SchemaNotFoundError (unknown kind/apiVersion).
        validate_strict(obj)
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.match(name), name
        assert obj["metadata"].get("namespace"), f"{obj['kind']}/{name} has no namespace"


def test_default_render_has_the_whole_platform(chart: Any) -> None:
    objects = render(chart)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for component in ("webserver", "daemon", "user-code", "api"):
        assert ("Deployment", f"{FULLNAME}-{component}") in kinds
    for component in ("webserver", "user-code", "api"):
        assert ("Service", f"{FULLNAME}-{component}") in kinds
    assert ("HorizontalPodAutoscaler", f"{FULLNAME}-api") in kinds
    assert ("ServiceAccount", FULLNAME) in kinds
    assert ("Role", f"{FULLNAME}-run-launcher") in kinds
    assert ("RoleBinding", f"{FULLNAME}-run-launcher") in kinds
    for cm in ("dagster-instance", "dagster-workspace", "env"):
        assert ("ConfigMap", f"{FULLNAME}-{cm}") in kinds
    # Optional pieces stay out by default; no Secret is ever rendered.
    assert not find(objects, "Ingress")
    assert not find(objects, "Secret")
    # The image decides the sentiment model unless the values do (a baked model stays in use).
    env = one(objects, "ConfigMap", f"{FULLNAME}-env")["data"]
    assert "CRYPTO_SENTIMENT_MODEL" not in env
    assert env["CRYPTO_SOURCE"] == "simulated" and env["CRYPTO_PARTITION_START"] == "30d"
    # The lake defaults to $CRYPTO_HOME/lake (no CRYPTO_LAKE_URI), with 30 days of versions.
    assert "CRYPTO_LAKE_URI" not in env and env["CRYPTO_LAKE_RETENTION_DAYS"] == "30"
    assert not {"AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"} & set(env)


@pytest.mark.parametrize("storage", ["mysql", "postgres"])
def test_schema_migration_runs_once_before_the_deployments(chart: Any, storage: str) -> None:
    """A pre-install/pre-upgrade hook Job runs ``python -m cli.migrate`` with the Dagster image and
    a storage-only dagster.yaml of its own (the instance ConfigMap does not exist yet on install)."""
    objects = render(chart, {"dagster": {"storage": {"type": storage}}, "image": {"tag": "1.2.3"}})
    job = one(objects, "Job", f"{FULLNAME}-migrate")
    config = one(objects, "ConfigMap", f"{FULLNAME}-migrate")
    for hook, weight in ((job, 0), (config, -10)):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) == weight
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["python", "-m", "cli.migrate"]
    assert container["image"] == "ghcr.io/crypto-data-platform/crypto-data-platform:1.2.3"
    assert container["envFrom"] == [{"secretRef": {"name": f"{FULLNAME}-secrets"}}]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert pod["restartPolicy"] == "Never"
    instance = yaml.safe_load(config["data"]["dagster.yaml"])
    assert set(instance) == {"storage", "telemetry"}
    assert instance["storage"] == instance_yaml(objects)["storage"]
    assert {"name": "instance", "configMap": {"name": f"{FULLNAME}-migrate"}} in pod["volumes"]


def test_gateway_has_its_own_image_with_the_dagster_tag(chart: Any) -> None:
    objects = render(chart, {"image": {"tag": "0.9.1"}})
    api = one(objects, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "ghcr.io/crypto-data-platform/crypto-data-platform-gateway:0.9.1"
    web = one(objects, "Deployment", f"{FULLNAME}-webserver")["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "ghcr.io/crypto-data-platform/crypto-data-platform:0.9.1"
    pinned = render(chart, {"apiGateway": {"image": {"repository": "r.example/gw", "tag": "7"}}})
    api = one(pinned, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["image"] == "r.example/gw:7"


def test_uninstall_hook_deletes_the_runs_jobs(chart: Any) -> None:
    """After ``helm uninstall`` deleted the release, a post-delete hook runs ``python -m cli.run_jobs``
    with a ServiceAccount and Roles of its own (the chart's are gone by then) that may list and
    delete Jobs and list Pods, in the release's and the runs' namespaces, and nothing more."""
    for values, job_namespace in (({}, NAMESPACE), (production_values(), "crypto-runs")):
        objects = render(chart, values)
        name = f"{FULLNAME}-run-cleanup"
        job = one(objects, "Job", name)
        hooks = [o for o in objects if o["metadata"]["name"] == name]
        assert {o["metadata"]["annotations"]["helm.sh/hook"] for o in hooks} == {"post-delete"}
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name and one(objects, "ServiceAccount", name, NAMESPACE)
        (container,) = pod["containers"]
        assert container["args"] == [
            "python", "-m", "cli.run_jobs", "--namespace", job_namespace, "--release", RELEASE,
            "--release-namespace", NAMESPACE,
        ]  # fmt: skip
        for namespace in {NAMESPACE, job_namespace}:
            role = one(objects, "Role", name, namespace)
            assert {(r["resources"][0], tuple(r["verbs"])) for r in role["rules"]} == {
                ("jobs", ("list", "delete")),
                ("pods", ("list",)),
            }
            binding = one(objects, "RoleBinding", name, namespace)
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
        # It waits for the daemon's pods by this selector.
        daemon = one(objects, "Deployment", f"{FULLNAME}-daemon")["spec"]["template"]["metadata"]["labels"]
        for key_value in daemon_selector(RELEASE).split(","):
            key, _, value = key_value.partition("=")
            assert daemon[key] == value


def test_notes_render(chart: Any) -> None:
    notes = chart.render({}, name=RELEASE, namespace=NAMESPACE)["crypto-data-platform/templates/NOTES.txt"]
    assert f"svc/{FULLNAME}-webserver" in notes
    assert f"kubectl -n {NAMESPACE} get secret {FULLNAME}-secrets" in notes
    assert "DAGSTER_MYSQL_URL" in notes and "CRYPTO_DB_URL" in notes


def test_commands_ports_and_probes(chart: Any) -> None:
    objects = render(chart)
    containers = {name: spec["containers"][0] for name, spec in pod_specs(objects)}

    web = containers[f"{FULLNAME}-webserver"]
    # No `command`: the image's ENTRYPOINT (dumb-init) stays PID 1.
    assert all("command" not in c for c in containers.values())
    assert web["args"][0] == "dagster-webserver"
    assert web["args"][web["args"].index("--workspace") + 1] == "/opt/dagster/workspace/workspace.yaml"
    assert web["livenessProbe"]["httpGet"]["path"] == "/server_info"
    assert web["readinessProbe"]["httpGet"]["port"] == "http"

    daemon = containers[f"{FULLNAME}-daemon"]
    assert daemon["args"][:2] == ["dagster-daemon", "run"]
    assert daemon["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    daemon_deploy = one(objects, "Deployment", f"{FULLNAME}-daemon")
    assert daemon_deploy["spec"]["replicas"] == 1
    assert daemon_deploy["spec"]["strategy"]["type"] == "Recreate"

    code = containers[f"{FULLNAME}-user-code"]
    assert code["args"][:3] == ["dagster", "api", "grpc"]
    assert code["args"][code["args"].index("--module-name") + 1] == "crypto_assets.definitions"
    assert code["args"][code["args"].index("--port") + 1] == "4000"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert code[probe]["grpc"] == {"port": 4000, "service": "DagsterApi"}
    # The runs' image comes from the launcher's job_image, not from a code server's advertised one
    # (after an upgrade, that can be the old server's; tests/cluster proves new runs get the new image).
    env = {e["name"]: e.get("value") for e in code["env"]}
    assert "DAGSTER_CURRENT_IMAGE" not in env

    api = containers[f"{FULLNAME}-api"]
    assert api["args"][:2] == ["uvicorn", "api.app:app"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    api_deploy = one(objects, "Deployment", f"{FULLNAME}-api")
    annotations = api_deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    # The HPA owns the replica count.
    assert "replicas" not in api_deploy["spec"]


def test_workspace_points_at_the_user_code_service(chart: Any) -> None:
    objects = render(chart)
    cm = one(objects, "ConfigMap", f"{FULLNAME}-dagster-workspace")
    workspace = yaml.safe_load(cm["data"]["workspace.yaml"])
    assert workspace == {
        "load_from": [
            {"grpc_server": {"host": f"{FULLNAME}-user-code", "port": 4000, "location_name": "crypto_assets"}}
        ]
    }
    service = one(objects, "Service", f"{FULLNAME}-user-code")
    assert service["spec"]["ports"][0]["port"] == 4000


def test_api_gateway_hpa_scales_one_to_three(chart: Any) -> None:
    hpa = one(render(chart), "HorizontalPodAutoscaler", f"{FULLNAME}-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 3
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{FULLNAME}-api"}


def test_hpa_off_gives_fixed_replicas(chart: Any) -> None:
    objects = render(chart, postgres_values())
    assert not find(objects, "HorizontalPodAutoscaler")
    assert one(objects, "Deployment", f"{FULLNAME}-api")["spec"]["replicas"] == 2


def test_rbac_lets_webserver_and_daemon_run_jobs(chart: Any) -> None:
    objects = render(chart)
    role = one(objects, "Role", f"{FULLNAME}-run-launcher")
    allowed: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                allowed.setdefault((group, resource), set()).update(rule["verbs"])
    # What K8sRunLauncher calls: create/read/delete Jobs, list/read Pods, read Pod logs.
    assert {"create", "get", "list", "watch", "delete"} <= allowed[("batch", "jobs")]
    assert {"get", "list", "watch"} <= allowed[("", "pods")]
    assert "get" in allowed[("", "pods/log")]
    assert {"get", "list", "watch"} <= allowed[("", "events")]

    binding = one(objects, "RoleBinding", f"{FULLNAME}-run-launcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    for component in ("webserver", "daemon"):
        spec = one(objects, "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == FULLNAME
        assert spec.get("automountServiceAccountToken", True) is True
    # The code server and the gateway never talk to the API server.
    for component in ("user-code", "api"):
        spec = one(objects, "Deployment", f"{FULLNAME}-{component}")["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False


def test_separate_job_namespace_gets_rbac_configmap_and_service_account(chart: Any) -> None:
    objects = render(chart, production_values())
    fullname = "cdp-crypto-data-platform"
    role = one(objects, "Role", f"{fullname}-run-launcher")
    assert role["metadata"]["namespace"] == "crypto-runs"
    binding = one(objects, "RoleBinding", f"{fullname}-run-launcher")
    assert binding["metadata"]["namespace"] == "crypto-runs"
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    assert one(objects, "ConfigMap", f"{fullname}-env", "crypto-runs")
    assert one(objects, "ServiceAccount", "crypto-platform", "crypto-runs")


def test_credentials_only_come_from_secrets(chart: Any) -> None:
    for factory in VALUE_SETS.values():
        objects = render(chart, factory())
        assert not find(objects, "Secret"), "the chart must never hold secret values"
        for cm in find(objects, "ConfigMap"):
            data = cm.get("data", {})
            leaked = SECRET_ENV_NAMES & set(data)
            assert not leaked, f"{cm['metadata']['name']} holds {leaked}"
            if "dagster.yaml" in data:
                storage = yaml.safe_load(data["dagster.yaml"])["storage"]
                (url,) = [v for cfg in storage.values() for v in cfg.values()]
                assert set(url) == {"env"}, "the database URL must be read from the environment"
        for name, spec in pod_specs(objects):
            for container in spec["containers"]:
                for env in container.get("env", []):
                    if env["name"] in SECRET_ENV_NAMES:
                        assert "value" not in env, f"{name}: {env['name']} has a literal value"
                        assert "secretKeyRef" in env["valueFrom"]


def test_api_gateway_gets_only_its_keys(chart: Any) -> None:
    objects = render(chart)
    api = one(objects, "Deployment", f"{FULLNAME}-api")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"]}
    assert set(refs) == {"CRYPTO_DB_URL", "CRYPTO_API_KEYS", "REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert refs["CRYPTO_DB_URL"] == {"name": f"{FULLNAME}-secrets", "key": "CRYPTO_DB_URL"}
    assert refs["CRYPTO_API_KEYS"]["optional"] is True
    assert refs["AWS_SECRET_ACCESS_KEY"] == {
        "name": f"{FULLNAME}-secrets",
        "key": "AWS_SECRET_ACCESS_KEY",
        "optional": True,
    }
    assert all("secretRef" not in source for source in api["envFrom"])


def test_pods_run_as_non_root_with_read_only_root(chart: Any) -> None:
    for factory in VALUE_SETS.values():
        for name, spec in pod_specs(render(chart, factory())):
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] != 0, name
            for container in spec["containers"]:
                sc = container["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, name
                assert sc["allowPrivilegeEscalation"] is False, name
                assert container["resources"]["requests"], name
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{name} has no writable /tmp"


def test_production_values(chart: Any) -> None:
    objects = render(chart, production_values())
    image = (
        "registry.example.com/data/crypto-data-platform@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    gateway_image = (
        "registry.example.com/data/crypto-data-platform-gateway@sha256:"
        "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
    )
    for name, spec in pod_specs(objects):
        expected = gateway_image if name == f"{FULLNAME}-api" else image
        assert spec["containers"][0]["image"] == expected, name
        assert spec["imagePullSecrets"] == [{"name": "registry-example-com"}]
    code = one(objects, "Deployment", f"{FULLNAME}-user-code")["spec"]["template"]["spec"]
    assert {
        "name": "sentiment-model",
        "persistentVolumeClaim": {"claimName": "sentiment-models", "readOnly": True},
    } in code["volumes"]
    assert code["containers"][0]["envFrom"][1:] == [
        {"secretRef": {"name": "crypto-platform-credentials"}},
        {"secretRef": {"name": "crypto-platform-source-keys"}},
    ]
    env_cm = one(objects, "ConfigMap", f"{FULLNAME}-env", NAMESPACE)["data"]
    assert env_cm["CRYPTO_SOURCE"] == "live"
    assert env_cm["CRYPTO_SENTIMENT_MODEL"] == "/models/cryptobert"
    assert env_cm["CRYPTO_UI_URL"] == "https://dagster.example.com/dagster"
    assert (env_cm["CRYPTO_LAKE_URI"], env_cm["CRYPTO_LAKE_RETENTION_DAYS"]) == ("s3://crypto-lake/prod", "45")
    assert (env_cm["AWS_ENDPOINT_URL"], env_cm["AWS_REGION"], env_cm["AWS_ALLOW_HTTP"]) == (
        "http://minio.storage.svc:9000",
        "us-east-1",
        "true",
    )
    ingress = one(objects, "Ingress", FULLNAME)
    hosts = {rule["host"]: rule["http"]["paths"][0] for rule in ingress["spec"]["rules"]}
    assert hosts["dagster.example.com"]["path"] == "/dagster"
    assert hosts["api.example.com"]["backend"]["service"]["name"] == f"{FULLNAME}-api"
    web = one(objects, "Deployment", f"{FULLNAME}-webserver")["spec"]["template"]["spec"]
    assert web["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/dagster/server_info"


def test_config_change_rolls_the_pods(chart: Any) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        deploy = one(render(chart, values), "Deployment", f"{FULLNAME}-daemon")
        return deploy["spec"]["template"]["metadata"]["annotations"]

    before = checksums({})
    after = checksums({"dagster": {"concurrency": {"maxConcurrentRuns": 3}}})
    assert before["checksum/instance"] != after["checksum/instance"]
    assert before["checksum/env"] == after["checksum/env"]


def test_long_release_names_stay_within_kubernetes_limits(chart: Any) -> None:
    release = "a-very-long-release-name-for-the-crypto-platform-x1"
    assert len(release) <= 53
    for obj in render(chart, {}, name=release):
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.match(name), name


# ------------------------------------------------------------------------------------------
# Deliberately broken values
# ------------------------------------------------------------------------------------------

# case: (values, the part of the values schema that must reject them)
BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown storage": ({"dagster": {"storage": {"type": "sqlite"}}}, "/dagster/storage/type"),
    "unknown source": ({"config": {"source": "fake"}}, "/config/source"),
    "latest tag": ({"image": {"tag": "latest"}}, "/image/tag"),
    "cpu quantity": (
        {"dagster": {"runLauncher": {"resources": {"requests": {"cpu": "lots"}}}}},
        "/dagster/runLauncher/resources/requests/cpu",
    ),
    "memory quantity": (
        {"apiGateway": {"resources": {"requests": {"memory": "128 megabytes"}}}},
        "/apiGateway/resources/requests/memory",
    ),
    "zero min replicas": ({"apiGateway": {"autoscaling": {"minReplicas": 0}}}, "/apiGateway/autoscaling/minReplicas"),
    "typo at top level": ({"replicas": 3}, "'replicas' not allowed"),
    "secret value in values": ({"secrets": {"dbPassword": "hunter2"}}, "'dbPassword' not allowed"),
    "credential as plain env": (
        {"config": {"extraEnv": {"CRYPTO_DB_URL": "mysql+pymysql://u:pw@db/crypto"}}},
        "invalid propertyName 'CRYPTO_DB_URL'",
    ),
    "negative ttl": (
        {"dagster": {"runLauncher": {"ttlSecondsAfterFinished": -5}}},
        "/dagster/runLauncher/ttlSecondsAfterFinished",
    ),
    "bad partition start": ({"config": {"partitionStart": "last month"}}, "/config/partitionStart"),
    "empty horizon": ({"config": {"partitionStart": "0d"}}, "/config/partitionStart"),
    "port out of range": ({"userCode": {"port": 70000}}, "/userCode/port"),
    "lake uri without scheme": ({"config": {"lake": {"uri": "bucket/prefix"}}}, "/config/lake/uri"),
    "no lake retention": ({"config": {"lake": {"retentionDays": 0}}}, "/config/lake/retentionDays"),
    "lake key as plain env": (
        {"config": {"extraEnv": {"AWS_SECRET_ACCESS_KEY": "abc"}}},
        "invalid propertyName 'AWS_SECRET_ACCESS_KEY'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_values_schema_rejects(chart: Any, case: str) -> None:
    values, where = BAD_VALUES[case]
    with pytest.raises(helm_python.HelmValuesError) as rejected:
        chart.validate_schema(chart.merge_values(values))
    assert where in str(rejected.value)
    # An install (render) refuses them too.
    with pytest.raises(helm_python.HelmError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_template_rejects_min_replicas_above_max(chart: Any) -> None:
    values = {"apiGateway": {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}}
    chart.validate_schema(chart.merge_values(values))  # the schema alone cannot compare them
    with pytest.raises(helm_python.HelmRenderError, match="must not exceed maxReplicas"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_broken_manifest_fails_kubernetes_validation(chart: Any) -> None:
    """Free-form Kubernetes fields pass the values schema; the Kubernetes schema catches them."""
    unknown_field = {"webserver": {"affinity": {"nodeAffinity": {"preferredDuringScheduling": []}}}}
    objects = render(chart, unknown_field)
    web = one(objects, "Deployment", f"{FULLNAME}-webserver")
    with pytest.raises(kubernetes_validate.ValidationError, match="preferredDuringScheduling"):
        validate_strict(web)

    wrong_type = {"daemon": {"tolerations": [{"key": "a", "tolerationSeconds": "soon"}]}}
    daemon = one(render(chart, wrong_type), "Deployment", f"{FULLNAME}-daemon")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemon, K8S_VERSION, strict=False)

    # And the same manifests, corrected, pass.
    validate_strict(one(render(chart), "Deployment", f"{FULLNAME}-webserver"))


# ------------------------------------------------------------------------------------------
# The Dagster instance
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_dagster_yaml_loads_as_instance_config(
    chart: Any, value_set: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testkit.dagster_private import (
        class_from_code_pointer,
        dagster_instance_config,
        process_config,
        storage_config_schema,
        validate_config,
    )

    objects = render(chart, VALUE_SETS[value_set]())
    raw = one(objects, "ConfigMap", f"{FULLNAME}-dagster-instance")["data"]["dagster.yaml"]
    (tmp_path / "dagster.yaml").write_text(raw)

    config, custom_instance_class = dagster_instance_config(str(tmp_path))
    assert custom_instance_class is None

    # Every configurable class validates its own config section.
    for section in ("run_launcher", "run_coordinator", "compute_logs"):
        klass = class_from_code_pointer(config[section]["module"], config[section]["class"])
        result = validate_config(klass.config_type(), config[section].get("config", {}))
        assert result.success, (section, [e.message for e in result.errors])

    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["retention"]["schedule"]["purge_after_days"] > 0
    launcher = config["run_launcher"]["config"]
    assert launcher["run_k8s_config"]["job_spec_config"]["ttlSecondsAfterFinished"] > 0
    assert launcher["instance_config_map"] == f"{FULLNAME}-dagster-instance"

    # The storage URL resolves from the environment (i.e. from the Secret).
    storage_type = {"default": "mysql", "production": "mysql", "postgres": "postgres"}[value_set]
    env_var = {"mysql": "DAGSTER_MYSQL_URL", "postgres": "DAGSTER_PG_URL"}[storage_type]
    url = f"{storage_type}://dagster:pw@db:1/dagster"
    monkeypatch.setenv(env_var, url)
    processed = process_config(storage_config_schema().config_type, config["storage"])
    assert processed.success, processed.errors
    url_field = {"mysql": "mysql_url", "postgres": "postgres_url"}[storage_type]
    assert processed.value[storage_type][url_field] == url

    # And the storage class it names exists in the image's dependencies.
    if storage_type == "mysql":
        from dagster_mysql import MySQLRunStorage  # noqa: F401
    else:
        from dagster_postgres import PostgresRunStorage  # noqa: F401


def test_dagster_yaml_default_run_launcher_settings(chart: Any) -> None:
    config = instance_yaml(render(chart))
    launcher = config["run_launcher"]
    assert launcher["module"] == "dagster_k8s"
    cfg = launcher["config"]
    assert cfg["job_namespace"] == NAMESPACE
    assert cfg["job_image"] == "ghcr.io/crypto-data-platform/crypto-data-platform:0.1.0"
    assert cfg["env_secrets"] == [f"{FULLNAME}-secrets"]
    assert cfg["env_config_maps"] == [f"{FULLNAME}-env"]
    assert cfg["resources"] == {"requests": {"cpu": "500m", "memory": "384Mi"}, "limits": {"memory": "1536Mi"}}
    assert cfg["run_k8s_config"]["job_spec_config"] == {"ttlSecondsAfterFinished": 86400, "backoffLimit": 0}
    assert cfg["service_account_name"] == FULLNAME
    assert config["storage"] == {"mysql": {"mysql_url": {"env": "DAGSTER_MYSQL_URL"}}}
    assert config["run_coordinator"]["module"] == "dagster._core.run_coordinator"


# ------------------------------------------------------------------------------------------
# The run's Kubernetes Job, as K8sRunLauncher builds it
# ------------------------------------------------------------------------------------------


def launch_five_minute_run(
    objects: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], Any, str]:
    """Launch a run of five_minute_job with the chart's K8sRunLauncher; return the Job sent.

    The launcher is the real one, configured from the rendered dagster.yaml; only the cluster is
    missing, so a kubeconfig that points nowhere replaces the in-cluster config and the call
    that would POST the Job is captured instead.
    """
    import kubernetes
    from dagster import instance_for_test
    from dagster_k8s import K8sRunLauncher

    from testkit.dagster_private import (
        GrpcServerCodeLocationOrigin,
        JobPythonOrigin,
        LaunchRunContext,
        ModuleCodePointer,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
        RepositoryPythonOrigin,
        create_run_for_test,
    )

    config = instance_yaml(objects)
    launcher_cfg = copy.deepcopy(config["run_launcher"])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
                "current-context": "offline",
            }
        )
    )
    launcher_cfg["config"]["load_incluster_config"] = False
    launcher_cfg["config"]["kubeconfig_file"] = str(kubeconfig)

    # The code server advertises no image: the run's origin carries none and the launcher's job_image applies.
    workspace = yaml.safe_load(one(objects, "ConfigMap", f"{FULLNAME}-dagster-workspace")["data"]["workspace.yaml"])[
        "load_from"
    ][0]["grpc_server"]

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with instance_for_test(overrides={"run_launcher": launcher_cfg}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        sent: list[tuple[Any, str]] = []
        monkeypatch.setattr(
            launcher._api_client,  # private to dagster-k8s, which is pinned exactly with dagster (pyproject.toml)
            "create_namespaced_job_with_retries",
            lambda body, namespace: sent.append((body, namespace)),
        )
        code_origin = JobPythonOrigin(
            "five_minute_job",
            RepositoryPythonOrigin(
                executable_path=sys.executable,
                code_pointer=ModuleCodePointer("crypto_assets.definitions", "defs", None),
                container_image=None,
            ),
        )
        remote_origin = RemoteJobOrigin(
            RemoteRepositoryOrigin(
                GrpcServerCodeLocationOrigin(
                    host=workspace["host"],
                    port=workspace["port"],
                    location_name=workspace["location_name"],
                ),
                "__repository__",
            ),
            "five_minute_job",
        )
        run = create_run_for_test(
            instance,
            job_name="five_minute_job",
            job_code_origin=code_origin,
            remote_job_origin=remote_origin,
            tags={"dagster/partition": "2026-01-01-00:05", "dagster/partition_set": "five_minute_job_partition_set"},
        )
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        assert len(sent) == 1
        job, namespace = sent[0]
        assert isinstance(job, kubernetes.client.V1Job)
        manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
        return manifest, run, namespace


def test_run_launcher_builds_a_valid_job_for_the_five_minute_job(
    chart: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_k8s.job import get_job_name_from_run_id

    objects = render(chart)
    job, run, namespace = launch_five_minute_run(objects, tmp_path, monkeypatch)
    validate_strict(job)

    assert namespace == NAMESPACE
    assert job["metadata"]["name"] == get_job_name_from_run_id(run.run_id)
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0

    labels = job["metadata"]["labels"]
    assert labels["dagster/job"] == "five_minute_job"
    assert labels["dagster/run-id"] == run.run_id
    assert labels["dagster/code-location"] == "crypto_assets"
    assert labels["app.kubernetes.io/component"] == "run_worker"
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The uninstall hook's selector finds this Job and its Pod.
    for key_value in run_selector(RELEASE).split(","):
        key, _, value = key_value.partition("=")
        assert labels[key] == value
        assert job["spec"]["template"]["metadata"]["labels"][key] == value

    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/crypto-data-platform/crypto-data-platform:0.1.0"
    args = container["args"]
    assert args[args.index("execute_run") - 1] == "api"
    assert "command" not in container  # the image's ENTRYPOINT (dumb-init) runs the args
    assert container["envFrom"] == [
        {"configMapRef": {"name": f"{FULLNAME}-env"}},
        {"secretRef": {"name": f"{FULLNAME}-secrets"}},
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert env["DAGSTER_RUN_JOB_NAME"] == "five_minute_job"
    assert not SECRET_ENV_NAMES & set(env), "credentials must come from the Secret"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "384Mi"}, "limits": {"memory": "1536Mi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/opt/dagster/dagster_home"} <= mounts


def test_run_job_with_production_values(chart: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(chart, production_values())
    job, _run, namespace = launch_five_minute_run(objects, tmp_path, monkeypatch)
    validate_strict(job)
    assert namespace == "crypto-runs"

    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("registry.example.com/data/crypto-data-platform@sha256:")
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    assert container["envFrom"][1:] == [
        {"secretRef": {"name": "crypto-platform-credentials"}},
        {"secretRef": {"name": "crypto-platform-source-keys"}},
    ]
    assert {"name": "sentiment-model", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    assert pod["imagePullSecrets"] == [{"name": "registry-example-com"}]
    assert pod["serviceAccountName"] == "crypto-platform"
    assert pod["nodeSelector"] == {"workload": "batch"}
    assert pod["tolerations"][0]["key"] == "workload"
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["metadata"]["labels"]["team"] == "data"


def test_broken_security_context_fails_manifests_and_run_job(
    chart: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """podSecurityContext is free-form in values; a bad field is caught in every pod."""
    objects = render(chart, {"podSecurityContext": {"runAsNonRoot": True, "runAsUser": "app"}})
    for kind_name in ("webserver", "daemon", "user-code", "api"):
        deployment = one(objects, "Deployment", f"{FULLNAME}-{kind_name}")
        with pytest.raises(kubernetes_validate.ValidationError, match="runAsUser|app"):
            validate_strict(deployment)
    # The run launcher refuses to build the run's Job from it.
    with pytest.raises(ValueError, match="invalid literal for int"):
        launch_five_minute_run(objects, tmp_path, monkeypatch)


def test_kubernetes_validate_has_the_target_version() -> None:
    major_minor = K8S_VERSION.rsplit(".", 1)[0]
    assert any(v.startswith(major_minor) for v in kubernetes_validate.utils.all_versions())
