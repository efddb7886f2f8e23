"""Security properties of everything rendered: restricted pods, default-deny networking,
least-privilege RBAC, and no secret value anywhere in the output."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from finmlops.deploy import Rendered, render_kserve, render_kubernetes, render_seldon

SENTINEL = "s3cr3t-SENTINEL-do-not-render-7f3a"


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


def test_every_pod_is_restricted_and_limited(rendered: Rendered) -> None:
    pods = list(_pods(rendered.manifests()))
    assert len(pods) == 5  # serving, mlflow, data, training, daily
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


def test_read_only_root_has_writable_home(rendered: Rendered) -> None:
    deployment = next(o for o in rendered.manifests() if o["metadata"]["name"]
                      == "finmlops-serving" and o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[env["FINMLOPS_HOME"]]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    paths = {p: c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    assert paths == {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}


def test_every_namespace_has_default_deny(rendered: Rendered) -> None:
    objs = rendered.manifests()
    namespaces = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    assert len(namespaces) == 3
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


def test_serving_ingress_only_from_gateway_monitoring_and_pipelines(rendered: Rendered) -> None:
    inference = "finmlops-inference"
    sources = sorted(
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for o in rendered.manifests()
        if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == inference
        for rule in o["spec"].get("ingress", []) for peer in rule["from"])
    assert sources == ["envoy-gateway-system", "finmlops-monitoring", "finmlops-pipelines"]


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


def test_secrets_are_referenced_never_inlined(make_settings: Any,
                                             pinned: dict[str, str]) -> None:
    settings = make_settings(FINMLOPS_API_TOKEN=SENTINEL,
                             FINMLOPS_SERVE__CORS_ORIGINS='["https://app.example.com"]')
    assert settings.serve.api_token is not None
    assert settings.serve.api_token.get_secret_value() == SENTINEL
    k8s, seldon = render_kubernetes(settings), render_seldon(settings, pinned)
    kserve = render_kserve(settings, pinned)
    text = "".join(k8s.files().values()) + "".join(seldon.files().values()) + "".join(
        kserve.files().values())
    assert SENTINEL not in text
    assert not [o for o in k8s.manifests() if o["kind"] == "Secret"]
    # Every credential-looking variable comes from a secretKeyRef.
    for where, _, containers in _pods(k8s.manifests()):
        for c in containers:
            for e in c["env"]:
                if any(w in e["name"] for w in ("SECRET", "TOKEN", "ACCESS_KEY", "PASSWORD",
                                                "BACKEND_STORE")):
                    assert set(e) == {"name", "valueFrom"}, (where, e["name"])
                    assert "secretKeyRef" in e["valueFrom"]


def test_only_the_inference_api_is_public(rendered: Rendered) -> None:
    (route,) = [o for o in rendered.manifests() if o["kind"] == "HTTPRoute"]
    paths = [m["path"] for r in route["spec"]["rules"] for m in r["matches"]]
    assert paths == [{"type": "PathPrefix", "value": "/v2"}]


def test_only_workflow_pods_reach_prometheus_and_only_on_its_port(rendered: Rendered) -> None:
    """The daily decide step queries Prometheus across namespaces: both sides allow it."""
    pols = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
            for o in rendered.manifests() if o["kind"] == "NetworkPolicy"}
    out = pols[("finmlops-pipelines", "allow-workflows-to-prometheus")]
    into = pols[("finmlops-monitoring", "allow-workflows-to-prometheus")]
    prom = {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    assert out["policyTypes"] == ["Egress"] and into["policyTypes"] == ["Ingress"]
    assert out["podSelector"] == into["ingress"][0]["from"][0]["podSelector"]
    assert "workflows.argoproj.io/workflow" in str(out["podSelector"])
    assert out["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "finmlops-monitoring"}}, "podSelector": prom}],
        "ports": [{"protocol": "TCP", "port": 9090}]}]
    assert into["podSelector"] == prom
    assert into["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
