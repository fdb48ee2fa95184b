"""deploy/k8s: both overlays render with kustomize and every object is valid, offline.

Core objects are validated (strict: unknown fields fail) against the Kubernetes 1.30 OpenAPI
schemas shipped by the ``kubernetes-validate`` package. ServiceMonitor and PrometheusRule are
Prometheus Operator CRDs, not in those schemas: they are checked against the minimal schemas
below, written from the prometheus-operator API reference (monitoring.coreos.com/v1) for the
fields we use, with unknown fields refused. Then the issue's invariants: non-root, read-only
root filesystem, resources, probes, PDBs, no secret values in the repository.

kustomize is built once from its Go module (``python -m deploy.k8s.render --install``; this
test builds it when missing, as ``make setup`` would) and cached; like promtool in
test_prometheus_files.py, without it (no Go) these tests fail rather than skip.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cpwatch.settings import Settings
from deploy.k8s import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
K8S_VERSION = "1.30"
WORKLOADS = ("Deployment", "Job")
SECRET_WORDS = re.compile(r"PASSWORD|API_KEY|TOKEN|SECRET|ROUTING_KEY", re.I)

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
    },
    "additionalProperties": False,
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _STR_MAP, "matchExpressions": {"type": "array"}},
    "additionalProperties": False,
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def _crd(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": spec,
        },
        "additionalProperties": False,
    }


CRD_SCHEMAS = {
    "ServiceMonitor": _crd(
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    "PrometheusRule": _crd(
        "PrometheusRule",
        {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "oneOf": [
                                        {"required": ["alert"]},
                                        {"required": ["record"]},
                                    ],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STR_MAP,
                                        "annotations": _STR_MAP,
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
    ),
}


def validate(obj: dict[str, Any]) -> None:
    """Raise on an invalid object: core kinds by the Kubernetes schemas, CRDs by ours."""
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered from a copy of deploy/k8s whose secrets.env files are the
    examples' placeholders (the repository has no secrets.env)."""
    try:
        render.kustomize()  # builds it with Go when missing
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"no kustomize: {exc} (python -m deploy.k8s.render --install)")
    work = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, work, ignore=shutil.ignore_patterns("secrets.env", "*.pem"))
    for example in work.glob("overlays/*/secrets.env.example"):
        shutil.copy(example, example.with_name("secrets.env"))
    return {name: render.render(work / "overlays" / name) for name in OVERLAYS}


def objects(rendered: dict[str, list[dict[str, Any]]], kind: str | None = None) -> list[Any]:
    return [(name, o) for name, objs in rendered.items() for o in objs if kind in (None, o["kind"])]


def pod_specs(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objs
        if o["kind"] in WORKLOADS
    ]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_config(objs: list[dict[str, Any]]) -> dict[str, str]:
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and "CPWATCH_HOME" in o.get("data", {})]
    return dict(cm["data"])


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(rendered: dict[str, Any], overlay: str) -> None:
    objs = rendered[overlay]
    assert len(objs) > 10
    for obj in objs:
        validate(obj)  # raises on the first invalid object


def test_the_validation_catches_invalid_objects(rendered: dict[str, Any]) -> None:
    """The checks above can fail: a misspelt field, a wrong type, a bad CRD all raise."""
    objs = rendered["production"]
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    typo = copy.deepcopy(deploy)
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    wrong_type = copy.deepcopy(deploy)
    wrong_type["spec"]["replicas"] = "three"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(bad)
    monitor = next(o for o in objs if o["kind"] == "ServiceMonitor")
    bad_monitor = copy.deepcopy(monitor)
    bad_monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    bad_rule = copy.deepcopy(rule)
    bad_rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    for bad in (bad_monitor, bad_rule):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_restricted(rendered: dict[str, Any], overlay: str) -> None:
    specs = pod_specs(rendered[overlay])
    assert {n.split("/")[0] for n, _ in specs} == set(WORKLOADS)
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] >= 1000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in containers(spec):
            sc = c["securityContext"]
            where = f"{name} {c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            for path in ("/tmp", "/var/lib/cpwatch"):  # noqa: S108 - the pod's own /tmp
                assert "emptyDir" in volumes[mounts[path]], f"{where}: {path} not an emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(rendered: dict[str, Any], overlay: str) -> None:
    for name, spec in pod_specs(rendered[overlay]):
        for c in containers(spec):
            for part in ("requests", "limits"):
                assert set(c["resources"][part]) == {"cpu", "memory"}, f"{name} {c['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes(rendered: dict[str, Any], overlay: str) -> None:
    deployments = {o["metadata"]["name"]: o for o in rendered[overlay] if o["kind"] == "Deployment"}
    api = deployments["cpwatch-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Readiness must fail while Kafka or Elasticsearch is down: /healthz does not (always 200).
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = deployments["cpwatch-worker"]["spec"]["template"]["spec"]["containers"][0]
    start = worker["startupProbe"]
    # The worker serves /metrics only after waiting for the engines (CPWATCH_STARTUP_WAIT_S).
    wait = float(env_config(rendered[overlay])["CPWATCH_STARTUP_WAIT_S"])
    assert start["periodSeconds"] * start["failureThreshold"] > wait
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdbs_cover_worker_and_api(rendered: dict[str, Any], overlay: str) -> None:
    objs = rendered[overlay]
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    for component in ("worker", "api"):
        (deploy,) = [
            o
            for o in objs
            if o["metadata"]["name"] == f"cpwatch-{component}" and o["kind"] == "Deployment"
        ]
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        covering = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, component
        assert covering[0]["spec"].get("maxUnavailable") == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_fit_the_partitions(rendered: dict[str, Any], overlay: str) -> None:
    """More workers than partitions would idle (docs/operations.md, `cpwatch topics plan`)."""
    objs = rendered[overlay]
    (worker,) = [
        o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "cpwatch-worker"
    ]
    assert worker["spec"]["replicas"] <= int(env_config(objs)["CPWATCH_TOPIC_PARTITIONS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_real_settings(rendered: dict[str, Any], overlay: str) -> None:
    """Every CPWATCH_* key given to the pods names a Settings field (a typo would be ignored)."""
    fields = {f"CPWATCH_{name.upper()}" for name in Settings.model_fields}
    objs = rendered[overlay]
    keys = [k for k in env_config(objs) if k.startswith("CPWATCH_")]
    for secret in (o for o in objs if o["kind"] == "Secret"):
        keys += list(secret.get("data", {}))
    unknown = sorted(set(keys) - fields)
    assert not unknown, unknown
    config = env_config(objs)
    assert Settings(**{k[8:].lower(): v for k, v in config.items() if k.startswith("CPWATCH_")})


def test_no_secret_values_in_the_repository(rendered: dict[str, Any]) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/k8s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == [] or not any(p.endswith(("secrets.env", ".pem")) for p in tracked)
    for path in K8S.rglob("*"):
        if path.is_dir() or path.suffix not in (".yaml", ".yml", ".example", ".env"):
            continue
        if path.name == "secrets.env":
            continue  # the operator's own file, ignored by git (deploy/k8s/.gitignore)
        for doc in yaml.safe_load_all(path.read_text()) if path.suffix != ".example" else ():
            assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), path
        if path.suffix == ".example":
            for line in path.read_text().splitlines():
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    assert "REPLACE_WITH_" in value, f"{path}: {key} is not a placeholder"
    for overlay, obj in objects(rendered):
        if obj["kind"] == "ConfigMap":
            assert not [k for k in obj.get("data", {}) if SECRET_WORDS.search(k)], overlay
    for overlay, spec in ((o, s) for o, objs in rendered.items() for _, s in pod_specs(objs)):
        for c in containers(spec):
            for env in c.get("env", []):
                assert "value" not in env or not SECRET_WORDS.search(env["name"]), overlay
            refs = [e for e in c["envFrom"] if "secretRef" in e]
            assert [r["secretRef"]["name"].startswith("cpwatch-secrets") for r in refs] == [True]


def test_generated_secret_holds_only_the_example_placeholders(rendered: dict[str, Any]) -> None:
    import base64

    (secret,) = [o for o in rendered["production"] if o["kind"] == "Secret"]
    values = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert values and all("REPLACE_WITH_" in v for v in values)
    (local,) = [o for o in rendered["local"] if o["kind"] == "Secret"]
    assert not local.get("data")


# ---------------------------------------------------------------- monitoring


def test_prometheus_rule_equals_rules_yml(rendered: dict[str, Any]) -> None:
    """The PrometheusRule carries exactly deploy/prometheus/rules.yml's groups: no drift."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    on_disk = (K8S / "base" / "prometheusrule.yaml").read_text()
    assert on_disk == render.prometheus_rule_text(), (
        "base/prometheusrule.yaml is stale: python -m deploy.k8s.render --prometheusrule"
    )
    (rule,) = [o for o in rendered["production"] if o["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == rules["groups"]


def test_monitors_scrape_what_the_rules_expect(rendered: dict[str, Any]) -> None:
    objs = rendered["production"]
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    rules = (ROOT / "deploy" / "prometheus" / "rules.yml").read_text()
    jobs = re.search(r'up\{job=~"([^"]+)"\}', rules)
    assert jobs is not None
    # The operator's job label is the Service name: it must be what CpwatchDown watches.
    assert set(jobs[1].split("|")) <= set(services)
    for m in monitors:
        sel = m["spec"]["selector"]["matchLabels"]
        (svc,) = [s for s in services.values() if sel.items() <= s["metadata"]["labels"].items()]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        assert {e["port"] for e in m["spec"]["endpoints"]} <= ports
    assert not [o for o in rendered["local"] if o["apiVersion"].startswith("monitoring.")]


# ---------------------------------------------------------------- files


def test_rules_configmap_is_the_packaged_rules_file() -> None:
    from streams.rules import load_rules

    base = K8S / "base" / "rules.yaml"
    assert base.read_text() == (ROOT / "cpwatch" / "data" / "rules.yaml").read_text()
    assert load_rules(base)


def test_dockerfile_runs_as_the_pods_user(rendered: dict[str, Any]) -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    users = re.findall(r"^USER (\d+):(\d+)$", text, re.M)
    assert users == [("10001", "10001")]
    for _, spec in pod_specs(rendered["production"]):
        assert spec["securityContext"]["runAsUser"] == 10001
    images = {c["image"] for _, s in pod_specs(rendered["production"]) for c in containers(s)}
    assert images == {"registry.example.org/cpwatch:0.1.0"}
