"""The universe search's WorkflowTemplate: workers fan out over one Optuna study, then one
step summarises every trial of the universe."""

from __future__ import annotations

import json
from typing import Any

from finmlops.config import Settings
from finmlops.deploy import Rendered
from finmlops.deploy.workflows import SEARCH_TEMPLATE, search_template


def _spec(rendered: Rendered) -> dict[str, Any]:
    obj = next(o for o in rendered.manifests() if o["metadata"]["name"] == SEARCH_TEMPLATE)
    assert obj["kind"] == "WorkflowTemplate"
    spec: dict[str, Any] = obj["spec"]
    return spec


def test_search_workers_fan_out_then_one_summary(rendered: Rendered) -> None:
    spec = _spec(rendered)
    (dag,) = [t["dag"] for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    tasks = {t["name"]: t for t in dag["tasks"]}
    assert tasks["search"]["withParam"] == "{{workflow.parameters.workers}}"
    assert tasks["search-summary"]["depends"] == "search"
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    workers = json.loads(params["workers"])
    assert len(workers) == 4
    assert int(params["trials_per_worker"]) * len(workers) >= Settings().universe.search.trials


def test_search_steps_share_the_study_storage_from_a_secret(rendered: Rendered) -> None:
    spec = _spec(rendered)
    containers = {t["name"]: t["container"] for t in spec["templates"] if "container" in t}
    assert containers["search"]["args"] == ["search", "--trials",
                                            "{{workflow.parameters.trials_per_worker}}"]
    assert containers["search-summary"]["args"] == ["search", "--trials", "0"]
    for c in containers.values():
        env = {e["name"]: e for e in c["env"]}
        ref = env["FINMLOPS_UNIVERSE__SEARCH__STORAGE"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "finmlops-search", "key": "url"}
        assert "value" not in env["FINMLOPS_UNIVERSE__SEARCH__STORAGE"]


def test_trials_are_split_over_the_workers() -> None:
    s = Settings.model_validate({"universe": {"search": {"trials": 10}}})
    params = {p["name"]: p["value"]
              for p in search_template(s, workers=3)["spec"]["arguments"]["parameters"]}
    assert params["trials_per_worker"] == "4"
