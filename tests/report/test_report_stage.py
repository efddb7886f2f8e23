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
from typer.testing import CliRunner

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.pipeline import RunContext, SilentReporter, save_state
from finmlops.pipeline._report import run
from trained_support import trained_entry

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def state(tmp_path, evaluation, abtest_full):
    ev_path = tmp_path / "evaluation.json"
    ev_path.write_text(json.dumps(evaluation))
    ab_path = tmp_path / "abtest.json"
    ab_path.write_text(json.dumps(abtest_full))  # NaN as Python writes it
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
    page = path.read_text()
    blobs = re.findall(r'id="plotly-gz">(.*?)</script>', page)
    assert len(blobs) == 1  # plotly.js inlined exactly once
    assert gzip.decompress(base64.b64decode(blobs[0])).decode() == plotly_bundle().js
    assert path.stat().st_size < 2_000_000 and "MB)" in result.summary
    assert "A/B experiment" in page and "v-test" in page
    prov = page[page.index("id='provenance'"):page.index("id='performance'")]
    for text in ("a" * 32, "champion", "<td>7</td>", "generated at", "git commit"):
        assert text in prov, text
    # nothing it shows changed: the same file, not rendered again
    mtime = path.stat().st_mtime_ns
    assert run(RunContext(settings, SilentReporter(), st)).outputs["report"]["path"] == str(path)
    assert path.stat().st_mtime_ns == mtime


def test_report_without_abtest_and_without_evaluation(state):
    settings, st = state
    del st["abtest"]
    page = Path(run(RunContext(settings, SilentReporter(), st)).outputs["report"]["path"])
    assert "A/B experiment" not in page.read_text()
    with pytest.raises(StageError, match="finmlops run --until evaluate"):
        run(RunContext(settings, SilentReporter(), {}))


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
    dom = proc.stdout
    figures = re.findall(r'<div class="plot[^"]*" id="(fig\d+)"', dom)
    assert len(figures) == 15  # 10 evaluation figures + 5 A/B (3 per arm, 2 sequential)
    for fig in figures:  # plotly drew svg.main-svg inside every plot div
        inside = dom[dom.index(f'id="{fig}"'):dom.index(f'id="{fig}-json"')]
        assert 'class="main-svg"' in inside, fig
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
