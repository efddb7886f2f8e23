"""Security properties of everything rendered: restricted pods, default-deny networking with
the ledger reachable only by its clients, least-privilege RBAC, one token per scope mounted
only where needed, only inference and health exposed, and no secret value anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from deploy_support import Pod, connects, egress_allows, ingress_allows, routed

from finmlops.deploy import Rendered, render_kserve, render_kubernetes, render_seldon
from finmlops.deploy.workflows import DAILY_CRON, LEDGER_STEPS

TOKENS = {"FINMLOPS_INFERENCE_TOKEN": "inference-SENTINEL-7f3a",
          "FINMLOPS_FEEDBACK_TOKEN": "feedback-SENTINEL-9c1d",
          "FINMLOPS_ADMIN_TOKEN": "admin-SENTINEL-04be"}
DSN_PASSWORD = "pg-SENTINEL-5e82"
DSN = f"postgresql://finmlops:{DSN_PASSWORD}@db.example.internal:5432/finmlops"
CREDENTIAL_WORDS = ("SECRET", "TOKEN", "ACCESS_KEY", "PASSWORD", "BACKEND_STORE", "LEDGER_URL")


def _pods(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any],
                                                      list[dict[str, Any]]]]:
    """(where, pod-level securityContext, containers) for every pod the objects create."""
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] == "Deployment":
            pod = o["spec"]["template"]["spec"]
            yield name, pod["securityContext"], pod["containers"]
        elif o["kind"] in ("WorkflowTemplate", "CronWorkflow"):
            spec = o["spec"].get("workflowSpec", o["spec"])
            containers = [t["container"] for t in spec["templates"] if "container" in t]
            assert containers, name
            yield name, spec["securityContext"], containers


def _policies(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.manifests() if o["kind"] == "NetworkPolicy"]


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container["env"]}


def test_every_pod_is_restricted_and_limited(rendered: Rendered) -> None:
    pods = list(_pods(rendered.manifests()))
    assert len(pods) == 6  # serving, mlflow, data, training, daily, search
    for where, pod, containers in pods:
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for c in containers:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True, where
            limits, requests = c["resources"]["limits"], c["resources"]["requests"]
            assert set(limits) == set(requests) == {"cpu", "memory"}, where
            assert "privileged" not in sc, where


def test_the_ledger_database_is_not_a_superuser_playground(rendered: Rendered) -> None:
    (cluster,) = [o for o in rendered.manifests() if o["kind"] == "Cluster"]
    spec = cluster["spec"]
    assert spec["enableSuperuserAccess"] is False
    assert "superuserSecret" not in spec
    # The owner's credentials are referenced by name; CloudNativePG reads them at bootstrap.
    assert set(spec["bootstrap"]["initdb"]["secret"]) == {"name"}
    limits, requests = spec["resources"]["limits"], spec["resources"]["requests"]
    assert set(limits) == set(requests) == {"cpu", "memory"}


def test_every_namespace_has_default_deny(rendered: Rendered) -> None:
    objs = rendered.manifests()
    namespaces = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    assert namespaces == {"finmlops-pipelines", "finmlops-inference", "finmlops-monitoring",
                          "finmlops-ledger"}
    used = {o["metadata"]["namespace"] for o in objs if o["kind"] not in ("Namespace",
                                                                           "Application")}
    assert used == namespaces  # nothing lands in a namespace without the policies
    for ns in namespaces:
        deny = [o for o in objs if o["kind"] == "NetworkPolicy"
                and o["metadata"]["namespace"] == ns and o["spec"]["podSelector"] == {}
                and sorted(o["spec"]["policyTypes"]) == ["Egress", "Ingress"]
                and o["spec"]["ingress"] == [] and o["spec"]["egress"] == []]
        assert len(deny) == 1, ns
        labels = next(o for o in objs if o["kind"] == "Namespace"
                      and o["metadata"]["name"] == ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- who can reach whom: the rendered policies evaluated for representative pods ------------

def _pod_labels(rendered: Rendered, kind: str, name: str) -> dict[str, str]:
    obj = next(o for o in rendered.manifests()
               if o["kind"] == kind and o["metadata"]["name"] == name)
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def _step_pod(rendered: Rendered, workflow: str, step: str) -> Pod:
    """The pod Argo runs for one step: the workflow's pod labels, the template's own labels
    and the label Argo adds to every workflow pod."""
    obj = next(o for o in rendered.manifests() if o["metadata"]["name"] == workflow
               and o["kind"] in ("WorkflowTemplate", "CronWorkflow"))
    spec = obj["spec"].get("workflowSpec", obj["spec"])
    (template,) = [t for t in spec["templates"] if t["name"] == step]
    labels = {**spec["podMetadata"]["labels"], **template.get("metadata", {}).get("labels", {}),
              "workflows.argoproj.io/workflow": f"{workflow}-x1"}
    return Pod(f"{workflow}/{step}", obj["metadata"]["namespace"], labels)


@pytest.fixture(scope="module")
def pods(rendered: Rendered) -> dict[str, Pod]:
    (cluster,) = [o for o in rendered.manifests() if o["kind"] == "Cluster"]
    instance = {"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/instanceRole": "primary",
                **cluster["spec"]["inheritedMetadata"]["labels"]}
    return {
        "serving": Pod("serving", "finmlops-inference",
                       _pod_labels(rendered, "Deployment", "finmlops-serving")),
        "stranger-in-inference": Pod("debug", "finmlops-inference", {"app": "debug"}),
        "feedback": _step_pod(rendered, DAILY_CRON, "feedback"),
        "decide": _step_pod(rendered, DAILY_CRON, "decide"),
        "daily-ingest": _step_pod(rendered, DAILY_CRON, "ingest"),
        "daily-drift": _step_pod(rendered, DAILY_CRON, "drift"),
        "train": _step_pod(rendered, "finmlops-training", "train"),
        "data-ingest": _step_pod(rendered, "finmlops-data", "ingest"),
        "mlflow": Pod("mlflow", "finmlops-pipelines",
                      _pod_labels(rendered, "Deployment", "mlflow")),
        "minio": Pod("minio", "finmlops-pipelines", {"app": "minio"}),
        "prometheus": Pod("prometheus", "finmlops-monitoring",
                          {"app.kubernetes.io/name": "prometheus"}),
        "grafana": Pod("grafana", "finmlops-monitoring", {"app.kubernetes.io/name": "grafana"}),
        "gateway": Pod("envoy", "envoy-gateway-system", {"app.kubernetes.io/name": "envoy"}),
        "kube-system": Pod("anything", "kube-system", {"app": "x"}),
        "cnpg-operator": Pod("cnpg", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
        "ledger": Pod("ledger-1", "finmlops-ledger", instance),
        "ledger-standby": Pod("ledger-2", "finmlops-ledger",
                              {**instance, "cnpg.io/instanceRole": "replica"}),
        "stranger-in-ledger": Pod("debug", "finmlops-ledger", {"app": "debug"}),
    }


def _reaching(rendered: Rendered, pods: dict[str, Pod], dst: str, port: int) -> set[str]:
    pols = _policies(rendered)
    return {name for name, pod in pods.items()
            if name != dst and connects(pols, pod, pods[dst], port)}


def test_postgresql_only_from_serving_and_the_ledger_steps(rendered: Rendered,
                                                           pods: dict[str, Pod]) -> None:
    assert _reaching(rendered, pods, "ledger", 5432) == {
        "serving", "feedback", "decide", "cnpg-operator", "ledger-standby"}
    assert {f"{DAILY_CRON}/{s}" for s in LEDGER_STEPS} == {
        pods["feedback"].name, pods["decide"].name}


def test_the_ledger_side_refuses_even_where_the_client_side_allows(
        rendered: Rendered, pods: dict[str, Pod]) -> None:
    """MLflow may leave on any 5432 (its own PostgreSQL), but the ledger does not admit it."""
    pols = _policies(rendered)
    ledger = pods["ledger"]
    assert egress_allows(pols, pods["mlflow"], ledger, 5432)
    assert not ingress_allows(pols, pods["mlflow"], ledger, 5432)
    for other in ("kube-system", "gateway", "train", "data-ingest", "stranger-in-inference",
                  "stranger-in-ledger", "prometheus"):
        assert not ingress_allows(pols, pods[other], ledger, 5432), other


def test_cloudnativepg_gets_only_what_it_needs(rendered: Rendered,
                                               pods: dict[str, Pod]) -> None:
    pols = _policies(rendered)
    assert _reaching(rendered, pods, "ledger", 8000) == {"cnpg-operator", "ledger-standby"}
    apiserver = Pod("kubernetes", None)
    assert connects(pols, pods["ledger"], apiserver, 6443)
    assert connects(pols, pods["ledger"], pods["ledger-standby"], 5432)
    # Nothing else leaves the ledger's pods: no internet, no other namespace.
    assert not connects(pols, pods["ledger"], pods["serving"], 8080)
    assert not connects(pols, pods["ledger"], pods["minio"], 9000)
    assert not connects(pols, pods["stranger-in-ledger"], apiserver, 443)


def test_serving_is_reached_by_the_gateway_and_prometheus_only(rendered: Rendered,
                                                               pods: dict[str, Pod]) -> None:
    """The daily job writes into the ledger, so no workflow pod reaches the service."""
    assert _reaching(rendered, pods, "serving", 8080) == {"gateway", "prometheus", "grafana"}
    pols = _policies(rendered)
    for step in ("feedback", "decide", "daily-ingest", "train"):
        assert not connects(pols, pods[step], pods["prometheus"], 9090), step


def test_the_other_steps_of_the_daily_job_do_not_reach_the_ledger(
        rendered: Rendered, pods: dict[str, Pod]) -> None:
    pols = _policies(rendered)
    for step in ("daily-ingest", "daily-drift", "train", "data-ingest"):
        assert not egress_allows(pols, pods[step], pods["ledger"], 5432), step


def test_workflow_role_is_least_privilege(rendered: Rendered) -> None:
    roles = [o for o in rendered.manifests() if o["kind"] in ("Role", "ClusterRole")]
    assert [r["kind"] for r in roles] == ["Role"]
    assert roles[0]["rules"] == [{"apiGroups": ["argoproj.io"],
                                  "resources": ["workflowtaskresults"],
                                  "verbs": ["create", "patch"]}]
    for o in rendered.manifests():
        if o["kind"] in ("WorkflowTemplate", "CronWorkflow"):
            spec = o["spec"].get("workflowSpec", o["spec"])
            assert spec["serviceAccountName"] == roles[0]["metadata"]["name"]


# --- secrets ---------------------------------------------------------------------------------

def test_secrets_are_referenced_never_inlined(make_settings: Any,
                                             pinned: dict[str, str]) -> None:
    settings = make_settings(**TOKENS, FINMLOPS_LEDGER_URL=DSN,
                             FINMLOPS_SERVE__CORS_ORIGINS='["https://app.example.com"]')
    tokens = settings.serve.tokens
    assert [getattr(tokens, s).get_secret_value() for s in ("inference", "feedback", "admin")] \
        == list(TOKENS.values())
    assert settings.ledger_url == DSN
    k8s, seldon = render_kubernetes(settings), render_seldon(settings, pinned)
    kserve = render_kserve(settings, pinned)
    text = "".join(k8s.files().values()) + "".join(seldon.files().values()) + "".join(
        kserve.files().values())
    for sentinel in (*TOKENS.values(), DSN_PASSWORD, "db.example.internal"):
        assert sentinel not in text
    assert "**********" not in text  # not even pydantic's mask of a secret
    assert not [o for o in k8s.manifests() if o["kind"] == "Secret"]
    # Every credential-looking variable comes from a secretKeyRef.
    checked = 0
    for where, _, containers in _pods(k8s.manifests()):
        for c in containers:
            for e in c["env"]:
                if any(w in e["name"] for w in CREDENTIAL_WORDS):
                    assert set(e) == {"name", "valueFrom"}, (where, e["name"])
                    assert "secretKeyRef" in e["valueFrom"]
                    checked += 1
    assert checked > 10


def test_each_token_is_mounted_only_where_it_is_needed(rendered: Rendered) -> None:
    serving = next(o for o in rendered.manifests() if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == "finmlops-serving")
    (container,) = serving["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "valueFrom" in e and "TOKEN" in e["name"]}
    assert refs == {
        "FINMLOPS_INFERENCE_TOKEN": {"name": "finmlops-inference-token", "key": "token"},
        "FINMLOPS_FEEDBACK_TOKEN": {"name": "finmlops-feedback-token", "key": "token"},
        "FINMLOPS_ADMIN_TOKEN": {"name": "finmlops-admin-token", "key": "token"},
    }
    for where, _, containers in _pods(rendered.manifests()):
        if where.startswith("Deployment/finmlops-serving"):
            continue
        for c in containers:
            assert not {n for n in _env_names(c) if "TOKEN" in n}, where


def test_the_ledger_dsn_reaches_serving_and_the_ledger_steps_only(rendered: Rendered) -> None:
    holders = set()
    for o in rendered.manifests():
        if o["kind"] in ("WorkflowTemplate", "CronWorkflow"):
            spec = o["spec"].get("workflowSpec", o["spec"])
            for t in spec["templates"]:
                if "container" in t and "FINMLOPS_LEDGER_URL" in _env_names(t["container"]):
                    holders.add(f"{o['metadata']['name']}/{t['name']}")
        elif o["kind"] == "Deployment":
            for c in o["spec"]["template"]["spec"]["containers"]:
                if "FINMLOPS_LEDGER_URL" in _env_names(c):
                    holders.add(o["metadata"]["name"])
    assert holders == {"finmlops-serving", f"{DAILY_CRON}/feedback", f"{DAILY_CRON}/decide"}


# --- what the Gateway exposes ----------------------------------------------------------------

def _service_paths() -> list[tuple[str, bool]]:
    """Every route of the service (from its OpenAPI document, with concrete names), and
    whether it should be public: the inference scope and the health probes, nothing else."""
    from finmlops.serving._http import match
    from finmlops.serving.openapi import build_openapi

    doc = build_openapi(["baseline", "enhanced"], "direction-ab", ["1", "2"], 20, 21,
                        auth=True, input_name="features")
    out = []
    for template in doc["paths"]:
        path = template.replace("{name}", "direction-ab").replace("{version}", "3")
        route, _ = match(path)
        out.append((path, route.scope == "inference" or route.name in ("live", "ready")))
    return out


def test_the_gateway_routes_inference_and_health_only(rendered: Rendered) -> None:
    (route,) = [o for o in rendered.manifests() if o["kind"] == "HTTPRoute"]
    paths = _service_paths()
    private = {p for p, public in paths if not public}
    assert {"/v2/feedback", "/admin/experiment", "/admin/reload", "/admin/status", "/metrics",
            "/openapi.json"} <= private
    assert {"/v2", "/v2/health/ready", "/v2/models/direction-ab/infer",
            "/v2/models/direction-ab/versions/3/infer"} <= {p for p, public in paths if public}
    assert {p: routed(route, p) for p, _ in paths} == dict(paths)
    # Near misses of the public prefixes stay out as well.
    for path in ("/v2/feedback/", "/v2/modelsx/infer", "/v2/healthz", "/admin", "/"):
        assert not routed(route, path), path


def test_the_path_matcher_follows_gateway_api_semantics() -> None:
    route = {"spec": {"rules": [{"matches": [
        {"path": {"type": "PathPrefix", "value": "/abc/"}},
        {"path": {"type": "Exact", "value": "/x"}}]}]}}
    assert routed(route, "/abc") and routed(route, "/abc/def") and routed(route, "/x")
    assert not routed(route, "/abcd") and not routed(route, "/x/y")
    assert routed({"spec": {"rules": [{}]}}, "/anything")  # no match: everything
