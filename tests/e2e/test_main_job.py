"""The main job (`finmlops run`, what `make run` calls) end to end on the bundled data, on a
small configuration: every stage runs, in order, from an empty home, and leaves what the later
commands and the README rely on."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from finmlops.cli import main
from finmlops.config import load_settings
from finmlops.pipeline import load_state

SMALL = """
data:
  start: 2012-01-01
train:
  min_train_years: 3
  cutoff: 2018-12-31
  variants:
    baseline: {architecture: lstm, features: core, window: 5, hidden: 8, epochs: 3, patience: 2}
    enhanced: {architecture: gru, features: full, window: 10, hidden: 16, layers: 2,
               dropout: 0.1, epochs: 3, patience: 2}
abtest:
  replay_end: 2020-06-30
"""


pytestmark = [pytest.mark.slow, pytest.mark.integration]


@dataclass(frozen=True)
class MainJob:
    """``finmlops run`` from an empty home, the status commands after it, then ``finmlops
    run`` again: each command's exit code and output, and the run state after each run."""

    codes: dict[str, int]
    """Exit code by step: ``run``, ``models``, ``status``, ``rerun``."""
    out: dict[str, str]
    """Standard output by step."""
    state: dict[str, Any]
    """The run state after the first run (paths inside the home come back absolute)."""
    abtest: dict[str, Any]
    """``abtest.json`` as the first run left it."""
    again: dict[str, Any]
    """The run state after the second run."""


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> MainJob:
    root = tmp_path_factory.mktemp("job")
    cfg = root / "finmlops.yaml"
    cfg.write_text(SMALL)
    home = root / "home"
    settings = load_settings(cfg, environ={"FINMLOPS_HOME": str(home)})
    codes: dict[str, int] = {}
    out: dict[str, str] = {}

    def step(name: str, *args: str) -> None:
        with redirect_stdout(io.StringIO()) as captured:
            codes[name] = main(["--config", str(cfg), *args])
        out[name] = captured.getvalue()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINMLOPS_HOME", str(home))
        step("run", "run")
        state = load_state(settings)
        abtest = json.loads(Path(state["abtest"]["path"]).read_text())
        step("models", "models", "list", "--json")
        step("status", "abtest", "status", "--json")
        step("rerun", "run")
    return MainJob(codes, out, state, abtest, load_state(settings))


@pytest.mark.parametrize("step", ["run", "models", "status", "rerun"])
def test_every_command_succeeds(job: MainJob, step: str) -> None:
    assert job.codes[step] == 0


def test_every_stage_runs_in_order(job: MainJob) -> None:
    stages = ["ingest", "features", "train", "evaluate", "register", "abtest", "report"]
    positions = [job.out["run"].index(f"✓ {s}") for s in stages]
    assert positions == sorted(positions), "stages ran out of order"


def test_both_variants_are_trained(job: MainJob) -> None:
    assert set(job.state["trained"]) == {"baseline", "enhanced"}


@pytest.mark.parametrize("variant", ["baseline", "enhanced"])
def test_every_trained_variant_has_its_onnx_model(job: MainJob, variant: str) -> None:
    assert Path(job.state["trained"][variant]["model_dir"], "model.onnx").is_file()


@pytest.mark.parametrize("variant", ["baseline", "enhanced"])
def test_every_trained_variant_is_an_mlflow_run(job: MainJob, variant: str) -> None:
    assert job.state["trained"][variant]["run_id"], "every trained variant is an MLflow run"


def test_the_baseline_is_the_one_champion(job: MainJob) -> None:
    assert job.state["registered"]["baseline"]["aliases"].count("champion") == 1


def test_the_enhanced_variant_is_the_challenger(job: MainJob) -> None:
    assert "challenger" in job.state["registered"]["enhanced"]["aliases"]


def test_the_bundled_run_decides_exactly_to_continue(job: MainJob) -> None:
    """Determined: the bundled prices, train.seed with deterministic torch (the same weights
    every run) and routing by the hash of each request's TICKER:DATE key (the same arm per
    request). 18 months of one ticker's traffic is far from a verdict: both always-valid
    confidence sequences still straddle 0 and the arms' counts match the 70/30 weights."""
    assert job.abtest["decision"]["action"] == "continue"
    assert job.abtest["decision"]["reason"].startswith("no decision yet on net_return")


def test_the_bundled_runs_paired_test_decides_exactly_to_continue(job: MainJob) -> None:
    """Determined as the split decision is."""
    assert job.abtest["paired_decision"]["action"] == "continue"


def test_the_bundled_runs_arm_counts_match_the_weights(job: MainJob) -> None:
    """Determined as the split decision is: no sample-ratio mismatch."""
    assert not job.abtest["decision"]["numbers"]["srm"]["mismatch"]


def test_the_replay_starts_after_the_cutoff(job: MainJob) -> None:
    assert job.abtest["replay"]["start"] == "2019-01-01"


def test_every_covid_crash_day_is_served_once(job: MainJob) -> None:
    covid = job.abtest["stress_windows"]["covid_crash"]
    assert sum(arm["n"] for arm in covid["served"].values()) == covid["days"] == 24


def test_the_run_writes_its_report(job: MainJob) -> None:
    assert Path(job.state["report"]["path"]).is_file()


def test_models_list_reads_both_variants_the_run_registered(job: MainJob) -> None:
    versions = json.loads(job.out["models"])
    assert {v["variant"] for v in versions["versions"]} == {"baseline", "enhanced"}


def test_abtest_status_reads_both_arms_of_the_runs_experiment(job: MainJob) -> None:
    status = json.loads(job.out["status"])
    assert set(status["arms"]) == {"baseline", "enhanced"}


def test_a_second_run_reuses_the_registry_versions(job: MainJob) -> None:
    assert job.again["registered"] == job.state["registered"]


def test_a_second_run_reuses_the_caches(job: MainJob) -> None:
    assert "(cached)" in job.out["rerun"]
