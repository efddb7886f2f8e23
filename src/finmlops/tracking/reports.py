"""The HTML report in the tracking store: one run of kind ``report`` per distinct report,
instead of a copy on every training run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from finmlops.config import Settings
from finmlops.tracking._client import configure, translate
from finmlops.tracking.runs import KIND_TAG, git_commit

REPORT = "report"


@translate
def log_report(settings: Settings, path: Path, key: str,
               tags: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Attach ``path`` to the report run for ``key`` (a digest of what the report shows),
    creating it on first use; returns ``(run_id, logged)``: a report already there is not
    logged again."""
    tracker = configure(settings)
    client = tracker.client
    found = client.search_runs(
        [tracker.experiment_id],
        filter_string=(f"tags.`{KIND_TAG}` = '{REPORT}' and attributes.status = 'FINISHED'"
                       f" and tags.report_key = '{key}'"), max_results=1)
    if found:
        return str(found[0].info.run_id), False
    all_tags = {"mlflow.runName": "report", KIND_TAG: REPORT, "report_key": key,
                "git_commit": git_commit(), **{k: str(v)[:5000] for k, v in (tags or {}).items()}}
    run = client.create_run(tracker.experiment_id, run_name="report", tags=all_tags)
    run_id: str = run.info.run_id
    try:
        client.log_artifact(run_id, str(path), "report")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id, True
