"""The report stage: the evaluation (and the A/B result, when there is one) as one
self-contained HTML file under ``settings.reports_dir``, named by the hash of its content."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from finmlops.errors import StageError
from finmlops.pipeline.runner import RunContext, StageResult


def run(ctx: RunContext) -> StageResult:
    """Render the report of the current run state."""
    from finmlops.report import render_report, verdict

    ev = ctx.require("evaluation", "evaluate")
    evaluation = _load(Path(ev["path"]), "evaluation")
    abtest = None
    ab = ctx.state.get("abtest")
    if isinstance(ab, dict) and ab.get("path"):
        abtest = _load(Path(ab["path"]), "A/B result")
    settings = ctx.settings
    context = {
        "targets": ", ".join(settings.features.target),
        "dataset version": ctx.state.get("dataset_version", "-"),
        "variants": ", ".join(evaluation.get("variants", {})),
        "position rule": f"{settings.evaluation.rule}, threshold {settings.evaluation.threshold}"
                         f", dead band {settings.evaluation.dead_band}",
    }
    page = render_report(evaluation, abtest, title=f"finmlops: {context['targets']} direction",
                         context=context)
    digest = hashlib.sha256(page.encode()).hexdigest()[:16]
    path = settings.reports_dir / f"report-{digest}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(page, "utf-8")
    os.replace(tmp, path)
    _log_to_runs(ctx, path)
    return StageResult(summary=f"{path.name}: {verdict(evaluation).headline}",
                       outputs={"report": {"path": str(path)}})


def _log_to_runs(ctx: RunContext, path: Path) -> None:
    """Attach the report to every trained variant's MLflow run."""
    from finmlops.tracking import log_artifacts

    for info in (ctx.state.get("trained") or {}).values():
        if isinstance(info, dict) and info.get("run_id"):
            log_artifacts(ctx.settings, info["run_id"], {"report": path})


def _load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise StageError(f"{what} not found at {path}: run the stage that writes it again")
    return json.loads(path.read_text("utf-8"))
