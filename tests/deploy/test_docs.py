"""The README's "Running on Kubernetes" section names only files, templates and parameters that
the render produces."""

from __future__ import annotations

import re
from pathlib import Path

from finmlops.deploy import Rendered

REPO = Path(__file__).resolve().parents[2]


def _section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Running on Kubernetes")
    end = readme.find("\n## ", start + 1)
    return readme[start:] if end == -1 else readme[start:end]


def test_paths_in_the_docs_exist() -> None:
    text = _section()
    paths = set(re.findall(r"deploy/k8s/[\w./-]+", text))
    assert paths
    for p in paths:
        assert (REPO / p.rstrip(".")).exists(), p


def test_argo_commands_match_the_templates(rendered: Rendered) -> None:
    text = _section().replace("\\\n", " ")
    objs = {(o["kind"], o["metadata"]["name"]): o for o in rendered.manifests()}
    kinds = {"workflowtemplate": "WorkflowTemplate", "cronwf": "CronWorkflow"}
    commands = re.findall(r"argo submit -n (\S+) --from (\w+)/([\w-]+)((?: -p [^ ]+)*)", text)
    assert len(commands) >= 4
    for ns, kind, name, params in commands:
        obj = objs[(kinds[kind], name)]
        assert obj["metadata"]["namespace"] == ns
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        declared = {p["name"] for p in spec["arguments"]["parameters"]}
        used = set(re.findall(r"-p ([\w-]+)=", params))
        assert used <= declared, (name, used - declared)


def _documented_secrets() -> dict[tuple[str, str], tuple[set[str], str | None]]:
    """``(namespace, name) -> (keys, type)`` of every ``kubectl create secret`` in the section."""
    text = _section().replace("\\\n", " ")
    out: dict[tuple[str, str], tuple[set[str], str | None]] = {}
    for ns, name, flags in re.findall(
            r"kubectl -n (\S+) create secret generic (\S+)((?: +--[\w-]+=\S+)*)", text):
        keys = set(re.findall(r"--from-literal=([\w-]+)=", flags))
        kind = re.search(r"--type=(\S+)", flags)
        assert (ns, name) not in out, (ns, name)
        out[(ns, name)] = (keys, kind.group(1) if kind else None)
    return out


def _referenced_secrets(rendered: Rendered) -> dict[tuple[str, str], set[str]]:
    """Every Secret the render references, with the keys it reads, per namespace."""
    from finmlops.config import Settings
    from finmlops.deploy.backends import minio_values

    refs: dict[tuple[str, str], set[str]] = {}
    for o in rendered.manifests():
        ns = o["metadata"].get("namespace")
        if o["kind"] == "Deployment":
            containers = o["spec"]["template"]["spec"]["containers"]
        elif o["kind"] in ("WorkflowTemplate", "CronWorkflow"):
            spec = o["spec"].get("workflowSpec", o["spec"])
            containers = [t["container"] for t in spec["templates"] if "container" in t]
        elif o["kind"] == "Cluster":
            secret = o["spec"]["bootstrap"]["initdb"]["secret"]["name"]
            refs.setdefault((ns, secret), set()).update({"username", "password"})
            continue
        else:
            continue
        for c in containers:
            for e in c["env"]:
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault((ns, ref["name"]), set()).add(ref["key"])
    minio = minio_values(Settings())
    refs[("finmlops-pipelines", minio["existingSecret"])] = {"rootUser", "rootPassword"}
    return refs


def test_the_secrets_to_create_are_the_ones_the_render_reads(rendered: Rendered) -> None:
    documented = _documented_secrets()
    referenced = _referenced_secrets(rendered)
    assert {k: v[0] for k, v in documented.items()} == referenced
    (owner,) = [k for k, (_, kind) in documented.items() if k[0] == "finmlops-ledger"]
    assert documented[owner][1] == "kubernetes.io/basic-auth"  # what CloudNativePG expects
    # No token reaches the pipelines namespace: the daily job writes into the ledger.
    assert not [name for ns, name in documented if ns == "finmlops-pipelines" and "token" in name]


def test_the_documented_dsn_names_the_rendered_ledger() -> None:
    from finmlops.config import Settings
    from finmlops.deploy.ledger import LEDGER_DATABASE, LEDGER_OWNER, ledger_host

    text = _section()
    (dsn,) = set(re.findall(r'LEDGER_DSN="([^"]+)"', text))
    host = ledger_host(Settings())
    assert dsn == (f"postgresql://{LEDGER_OWNER}:$LEDGER_PASSWORD@{host}:5432/"
                   f"{LEDGER_DATABASE}?sslmode=require")
    assert f"--from-literal=username={LEDGER_OWNER} " in text


def test_the_documented_figures_are_the_rendered_ones(rendered: Rendered) -> None:
    text = " ".join(_section().split())
    serving = next(o for o in rendered.manifests() if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == "finmlops-serving")
    grace = serving["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert f"({grace} s with the defaults)" in text
    sleep = serving["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
    assert f"`deploy.prestop_sleep_s` ({sleep['sleep']['seconds']} s)" in text
    cluster = next(o for o in rendered.manifests() if o["kind"] == "Cluster")
    limit = cluster["spec"]["postgresql"]["parameters"]["max_connections"]
    assert f"({limit} with the defaults)" in text
    assert f"({cluster['spec']['instances']} by default" in text
    routes = [m["path"]["value"] for r in next(
        o for o in rendered.manifests() if o["kind"] == "HTTPRoute")["spec"]["rules"]
        for m in r["matches"]]
    assert routes == ["/v2/models", "/v2/health", "/v2", "/v2/repository/index"]
    for gone in ("prometheus-url", "service-url", "FINMLOPS_API_TOKEN", "--source prometheus"):
        assert gone not in text
