"""The report stage: the evaluation (and the A/B result, when there is one) as one
self-contained HTML tear sheet under ``settings.reports_dir``, named by the hash of what it
shows, with a provenance block, and attached once to the tracking store."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from finmlops.config import Settings, public_dict
from finmlops.errors import FinmlopsError
from finmlops.files import write_text
from finmlops.pipeline.runner import RunContext, StageResult

REPORT_FORMAT = 2
"""Bump when the page changes for the same inputs (2: the tear sheet)."""
RESULT_SECTIONS = ("data", "features", "train", "evaluation", "experiment", "abtest")
"""The settings that change what the report shows (not where files live)."""


def run(ctx: RunContext) -> StageResult:
    """Render the report of the current run state (reused when nothing it shows changed)."""
    from finmlops.contracts import read_evaluation
    from finmlops.report import read_abtest, render_report, verdict
    from finmlops.report.assets import plotly_bundle

    state = ctx.run_state("evaluation", "abtest")
    ev_path = Path(state.need_evaluation().path)
    evaluation = read_evaluation(ev_path)
    abtest, ab_path = None, None
    if state.abtest is not None:
        ab_path = Path(state.abtest.path)
        abtest = read_abtest(ab_path)
    settings = ctx.settings
    bundle = plotly_bundle(settings.report.plotly_js)
    provenance = _provenance(ctx)
    context = {
        "targets": ", ".join(settings.features.target),
        "variants": ", ".join(evaluation.variants),
        "position rule": f"{settings.evaluation.rule}, threshold {settings.evaluation.threshold}"
                         f", dead band {settings.evaluation.dead_band}",
    }
    key = hashlib.sha256(json.dumps({
        "format": REPORT_FORMAT, "evaluation": _sha256(ev_path),
        "abtest": _sha256(ab_path) if ab_path else None, "context": context,
        "provenance": {k: v for k, v in provenance.items() if k != "generated_at"},
        "plotly": hashlib.sha256(bundle.js.encode()).hexdigest(),
    }, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = settings.reports_dir / f"report-{key}.html"
    if not path.is_file():
        ctx.progress("rendering the report")
        page = render_report(evaluation, abtest, title=f"finmlops: {context['targets']} direction",
                             context=context, provenance=provenance, plotly_js=bundle.js,
                             plotly_source=bundle.source)
        write_text(path, page)
    note = _attach(ctx, path, key, provenance) if settings.report.attach_to_mlflow else ""
    size = path.stat().st_size / 1e6
    return StageResult(summary=f"{path.name} ({size:.1f} MB){note}: "
                               f"{verdict(evaluation).headline}",
                       outputs={"report": {"path": str(path)}})


def config_hash(settings: Settings) -> str:
    """A digest of the settings that change the report's figures."""
    data = public_dict(settings)
    picked = {k: data[k] for k in RESULT_SECTIONS}
    picked["data"] = {k: v for k, v in picked["data"].items()
                      if k not in ("store_uri", "s3_endpoint_url", "csv_path")}
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def _provenance(ctx: RunContext) -> dict[str, Any]:
    """Generated at, dataset version, models (registry versions, MLflow run ids, weights),
    git commit and config hash."""
    from finmlops.tracking import git_commit

    state = ctx.run_state("trained", "registered", "dataset_version")
    models = []
    for v, t in sorted(state.trained.items()):
        r = state.registered.get(v)
        models.append({"variant": v, "version": r.version if r else None,
                       "aliases": r.aliases if r else None,
                       "run_id": t.run_id or (r.run_id if r else None),
                       "weights_hash": t.weights_hash})
    return {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "dataset_version": state.dataset_version or "-",
        "git_commit": git_commit(),
        "config_hash": config_hash(ctx.settings),
        "models": models,
    }


def _attach(ctx: RunContext, path: Path, key: str, provenance: dict[str, Any]) -> str:
    """One report run per distinct report in the tracking store; a failure is a note."""
    from finmlops.tracking import log_report

    tags = {"dataset_version": str(provenance["dataset_version"]),
            "config_hash": provenance["config_hash"],
            "model_runs": ",".join(f"{m['variant']}={m['run_id']}"
                                   for m in provenance["models"])}
    try:
        run_id, _ = log_report(ctx.settings, path, key, tags)
    except FinmlopsError as exc:
        return f" (not attached to MLflow: {exc})"
    return f", MLflow run {run_id[:8]}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
