"""deploy/k8s: core kinds through `kubernetes-validate --strict`, custom resources (KEDA,
RabbitMQ Cluster Operator) through jsonschema against the vendored CRDs, then the contract."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DEPLOY, SERVICES, describe, require_tool, run

K8S = DEPLOY / "k8s"
SCHEMAS = K8S / "schemas"
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmq.com_rabbitmqclusters.yaml",
}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole deployment as one multi-document file.

    `kubectl kustomize` renders it when kubectl is installed; otherwise the resources listed in
    kustomization.yaml are concatenated (namespace set here, as kustomize would).
    """
    out = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    kubectl = shutil.which("kubectl")
    if kubectl:
        proc = run([kubectl, "kustomize", str(K8S)])
        assert proc.returncode == 0, describe(proc)
        out.write_text(proc.stdout)
    else:
        k = kustomization()
        docs = []
        for rel in k["resources"]:
            for doc in yaml.safe_load_all((K8S / rel).read_text()):
                if doc["kind"] != "Namespace":
                    doc["metadata"].setdefault("namespace", k["namespace"])
                docs.append(doc)
        out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def docs(rendered: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered.read_text()) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


# --- validation ---------------------------------------------------------------------------------


def kubernetes_validate(path: Path) -> None:
    proc = run([require_tool("kubernetes-validate"), "--strict", str(path)])
    assert proc.returncode == 0, describe(proc)
    for line in (proc.stdout + proc.stderr).splitlines():
        # WARN only for the custom resources, which test_custom_resources validates instead.
        assert not line.startswith("ERROR"), describe(proc)
        if line.startswith("WARN"):
            custom = r"kind (ScaledObject|TriggerAuthentication|RabbitmqCluster) "
            assert re.search(custom, line), line


def test_core_kinds_validate_strictly(rendered: Path, docs: list[dict[str, Any]]) -> None:
    kubernetes_validate(rendered)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} <= kinds


def test_secret_example_validates() -> None:
    kubernetes_validate(K8S / "secret.example.yaml")


def test_every_manifest_is_in_the_kustomization() -> None:
    listed = set(kustomization()["resources"])
    files = {
        str(p.relative_to(K8S))
        for p in K8S.rglob("*.yaml")
        if p.parent != SCHEMAS and p.name not in ("kustomization.yaml", "secret.example.yaml")
    }
    assert files == listed, (files - listed, listed - files)


def strict(schema: Any) -> Any:
    """An openAPIV3Schema as JSON Schema (draft 4), rejecting undeclared fields.

    Like the API server with strict field validation: objects that declare `properties` accept
    nothing else unless they preserve unknown fields; `nullable` allows null.
    """
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((SCHEMAS / CRDS[(api_version, kind)]).read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert ver["served"] and ver["storage"]
    schema = strict(copy.deepcopy(ver["schema"]["openAPIV3Schema"]))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(doc: dict[str, Any]) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("api_version,kind", list(CRDS))
def test_custom_resources(docs: list[dict[str, Any]], api_version: str, kind: str) -> None:
    found = [d for d in docs if d["kind"] == kind]
    assert found, kind
    for doc in found:
        assert doc["apiVersion"] == api_version
        assert not errors(doc), errors(doc)


def test_crd_validation_catches_mistakes(docs: list[dict[str, Any]]) -> None:
    so = copy.deepcopy(find(docs, "ScaledObject", "processing"))
    so["spec"]["maxReplicaCount"] = "8"  # wrong type
    so["spec"]["minReplicas"] = 1  # not a field
    so["spec"]["triggers"][0].pop("type")  # required
    messages = "\n".join(errors(so))
    assert "'8' is not of type 'integer'" in messages
    assert "minReplicas" in messages
    assert "'type' is a required property" in messages


def test_vendored_schemas_match_their_provenance() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for name in CRDS.values():
        digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert digest in row, f"{name}: sha256 {digest} not in schemas/README.md"


# --- the deployment's contract ------------------------------------------------------------------


@pytest.mark.parametrize("slug", SERVICES)
def test_deployment(docs: list[dict[str, Any]], slug: str) -> None:
    _pkg, port, env_names = SERVICES[slug]
    dep = find(docs, "Deployment", slug)
    assert dep["metadata"]["namespace"] == "gridpilot"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    assert c["image"].startswith(f"gridpilot-{slug}:")
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, (slug, kind)
    assert {"configMapRef": {"name": "gridpilot-config"}} in c["envFrom"]
    config = find(docs, "ConfigMap", "gridpilot-config")["data"]
    env = {e["name"]: e for e in c["env"]}
    provided = set(env) | set(config)
    assert set(env_names) <= provided, (slug, set(env_names) - provided)
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert secret_refs == {"gridpilot-secrets"}, slug
    for name in ("AMQP_URL", "DATABASE_URL", "GRIDPILOT_SECRET_KEY", "AMQP_MANAGEMENT_URL"):
        if name in env:
            assert "valueFrom" in env[name], f"{slug}: {name} must come from the Secret"
    svc = find(docs, "Service", slug)
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == port


def test_secret_example_has_every_referenced_key(docs: list[dict[str, Any]]) -> None:
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    keys = set(example["stringData"])
    referenced = set()
    for d in docs:
        text = yaml.safe_dump(d)
        referenced |= set(re.findall(r"name: gridpilot-secrets\n\s+key: (\w+)", text))
        referenced |= set(re.findall(r"key: (\w+)\n\s+name: gridpilot-secrets", text))
    assert referenced and referenced <= keys, referenced - keys


def test_data_volume_is_shared(docs: list[dict[str, Any]]) -> None:
    pvc = find(docs, "PersistentVolumeClaim", "gridpilot-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for slug in ("acquisition", "processing"):
        pod = find(docs, "Deployment", slug)["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "gridpilot-data"}} in pod[
            "volumes"
        ]


@pytest.mark.parametrize("slug", ["processing", "session-api"])
def test_pod_disruption_budget(docs: list[dict[str, Any]], slug: str) -> None:
    pdb = find(docs, "PodDisruptionBudget", slug)
    dep = find(docs, "Deployment", slug)
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_processing_scales_on_queue_length(docs: list[dict[str, Any]]) -> None:
    so = find(docs, "ScaledObject", "processing")
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == "processing"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 8)
    assert "replicas" not in find(docs, "Deployment", "processing")["spec"], "KEDA owns replicas"
    queues = set()
    for trigger in spec["triggers"]:
        assert trigger["type"] == "rabbitmq"
        md = trigger["metadata"]
        assert md["protocol"] == "http" and md["mode"] == "QueueLength"
        assert int(md["value"]) > 0
        assert "host" not in md, "credentials belong in the TriggerAuthentication"
        queues.add(md["queueName"])
        auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        (ref,) = auth["spec"]["secretTargetRef"]
        assert ref["parameter"] == "host" and ref["name"] == "gridpilot-secrets"
    assert queues == {"processing.images", "processing.finders"}


def test_rabbitmq_cluster(docs: list[dict[str, Any]]) -> None:
    rmq = find(docs, "RabbitmqCluster", "gridpilot-rabbitmq")
    plugins = set(rmq["spec"]["rabbitmq"]["additionalPlugins"])
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= plugins
    assert rmq["spec"]["replicas"] >= 3, "quorum queues need three nodes to survive one loss"


def test_acquisition_reads_the_microscopes_configmap(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The ConfigMap holds the example configuration, valid, mounted where the variable says."""
    from acquisition.config import load_microscopes

    cm = find(docs, "ConfigMap", "gridpilot-microscopes")
    text = cm["data"]["microscopes.toml"]
    assert text == (DEPLOY / "microscopes.example.toml").read_text(), "keep it the example's copy"
    path = tmp_path / "microscopes.toml"
    path.write_text(text)
    assert [s.id for s in load_microscopes(path)] == ["krios-sim", "glacios-1"]
    pod = find(docs, "Deployment", "acquisition")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["ACQUISITION_MICROSCOPES_FILE"] == "/etc/gridpilot/microscopes.toml"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "microscopes")
    assert mount["mountPath"] == "/etc/gridpilot" and mount["readOnly"] is True
    assert {"name": "microscopes", "configMap": {"name": "gridpilot-microscopes"}} in pod["volumes"]
