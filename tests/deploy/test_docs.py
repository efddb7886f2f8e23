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
