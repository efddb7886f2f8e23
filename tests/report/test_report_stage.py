"""The report stage, ``finmlops report``, and the page opened in a real headless browser."""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from page_support import Page
from typer.testing import CliRunner

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.files import write_json
from finmlops.pipeline import RunContext, SilentReporter, save_state
from finmlops.pipeline._report import run
from trained_support import trained_entry

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def state(tmp_path, evaluation, abtest_full):
    ev_path = tmp_path / "evaluation.json"
    write_json(ev_path, evaluation.to_json(), indent=1)  # as the evaluate stage does
    ab_path = tmp_path / "abtest.json"
    write_json(ab_path, abtest_full.to_json(), sort_keys=True)  # as the abtest stage does
    settings = Settings(home=tmp_path / "home", report={"attach_to_mlflow": False})
    return settings, {"evaluation": {"path": str(ev_path), "summary": {}},
                      "abtest": {"decision": "continue", "path": str(ab_path)},
                      "dataset_version": "v-test",
                      "trained": {"baseline": trained_entry(
                          "baseline", tmp_path / "oos.parquet", run_id="a" * 32,
                          weights_hash="b" * 64)},
                      "registered": {"baseline": {"version": "7", "aliases": ["champion"]}}}


def test_stage_writes_one_self_contained_file_named_by_its_content(state):
    from finmlops.report.assets import plotly_bundle

    settings, st = state
    result = run(RunContext(settings, SilentReporter(), st))
    path = Path(result.outputs["report"]["path"])
    assert path.parent == settings.reports_dir
    assert re.fullmatch(r"report-[0-9a-f]{16}\.html", path.name)
    page = Page(path.read_text())
    blobs = [e for e in page.elements if e.attrs.get("id") == "plotly-gz"]
    assert len(blobs) == 1  # plotly.js inlined exactly once
    assert gzip.decompress(base64.b64decode(blobs[0].raw)).decode() == plotly_bundle().js
    assert path.stat().st_size < 2_000_000 and "MB)" in result.summary
    assert "A/B experiment" in page.headings(2)
    facts, models = page.section("Provenance").tables()
    facts_by_name = dict(facts.rows)
    assert facts_by_name["dataset version"] == "v-test"
    assert {"generated at", "git commit", "config hash"} <= set(facts_by_name)
    baseline = models.row("baseline")
    assert (baseline["model version"], baseline["aliases"], baseline["MLflow run id"]) == (
        "7", "champion", "a" * 32)
    # nothing it shows changed: the same file, not rendered again
    mtime = path.stat().st_mtime_ns
    assert run(RunContext(settings, SilentReporter(), st)).outputs["report"]["path"] == str(path)
    assert path.stat().st_mtime_ns == mtime


def test_report_without_abtest_and_without_evaluation(state):
    settings, st = state
    del st["abtest"]
    path = Path(run(RunContext(settings, SilentReporter(), st)).outputs["report"]["path"])
    assert "A/B experiment" not in Page(path.read_text()).headings(2)
    with pytest.raises(StageError, match="finmlops run --until evaluate"):
        run(RunContext(settings, SilentReporter(), {}))


def test_an_abtest_file_the_program_does_not_write_stops_the_stage(state):
    settings, st = state
    path = Path(st["abtest"]["path"])
    data = json.loads(path.read_text())
    del data["timeline"]
    write_json(path, data)
    with pytest.raises(StageError) as bad:
        run(RunContext(settings, SilentReporter(), st))
    message = str(bad.value)
    assert "\n" not in message and str(path) in message and "timeline" in message
    assert "finmlops run --only abtest" in message
    assert list(settings.reports_dir.glob("*.html")) == []


def test_an_evaluation_file_the_program_does_not_write_stops_the_stage(state):
    settings, st = state
    path = Path(st["evaluation"]["path"])
    data = json.loads(path.read_text())
    del data["variants"]["enhanced"]["relative"]["capm"]
    write_json(path, data)
    with pytest.raises(StageError) as bad:
        run(RunContext(settings, SilentReporter(), st))
    message = str(bad.value)
    assert "\n" not in message and str(path) in message
    assert "variants.enhanced.relative.capm" in message
    assert "finmlops run --only evaluate" in message
    assert list(settings.reports_dir.glob("*.html")) == []


def test_cli_report_prints_the_path(state, monkeypatch):
    from finmlops.cli.evaluate import register

    settings, st = state
    monkeypatch.setenv("FINMLOPS_HOME", str(settings.home))
    monkeypatch.chdir(settings.home.parent)
    save_state(settings, st)
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = {"config": None}

    register(app)
    res = CliRunner().invoke(app, ["report", "--json"])
    assert res.exit_code == 0, res.output
    assert Path(json.loads(res.stdout)["path"]).is_file()


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_renders_every_plot_in_headless_chromium(state, tmp_path):
    settings, st = state
    path = Path(run(RunContext(settings, SilentReporter(), st)).outputs["report"]["path"])
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plots = [e for e in Page(proc.stdout).elements if e.tag == "div" and "plot" in e.classes]
    assert len(plots) == 15  # 10 evaluation figures + 5 A/B (3 per arm, 2 sequential)
    for div in plots:  # plotly drew svg.main-svg inside every plot div
        assert any("main-svg" in svg.classes for svg in div.find_all("svg")), div.attrs["id"]
    # the page logs nothing at all to the console: no errors, no warnings
    console = [line for line in proc.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line or "console error" in line.lower()]
    assert console == []


@pytest.mark.slow
@pytest.mark.integration
def test_the_report_is_attached_once_to_the_tracking_store(state):
    """One run of kind ``report`` per distinct report; the training runs get no copy."""
    from finmlops.tracking import configure

    settings, st = state
    settings = settings.model_copy(update={"report": settings.report.model_copy(
        update={"attach_to_mlflow": True})})
    first = run(RunContext(settings, SilentReporter(), st))
    second = run(RunContext(settings, SilentReporter(), st))
    assert "MLflow run" in first.summary
    tracker = configure(settings)
    runs = tracker.client.search_runs([tracker.experiment_id],
                                      "tags.`finmlops.kind` = 'report'")
    assert len(runs) == 1 and second.outputs == first.outputs
    files = [f.path for f in tracker.client.list_artifacts(runs[0].info.run_id, "report")]
    assert files == [f"report/{Path(first.outputs['report']['path']).name}"]
    assert runs[0].data.tags["model_runs"] == "baseline=" + "a" * 32
