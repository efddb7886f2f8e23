"""The register stage, run through the stage runner on a state like train leaves it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from finmlops.config import Settings
from finmlops.errors import StageError
from finmlops.models import TrainedVariant
from finmlops.pipeline import SilentReporter, Stage, run_stages
from finmlops.tracking import configure, count_trials, log_trained_variants, resolve

MakeTrained = Callable[..., TrainedVariant]
REGISTER = Stage("register", "finmlops.pipeline._register:run", "register models")


def _state(trained: list[TrainedVariant], run_ids: dict[str, str]) -> dict[str, Any]:
    return {
        "dataset_version": trained[0].data_version,
        "trained": {t.variant: t.model_copy(update={"run_id": run_ids.get(t.variant)}).to_json()
                    for t in trained},
    }


def test_stage_registers_the_runs_train_logged(settings: Settings,
                                               make_trained: MakeTrained) -> None:
    # Listed enhanced first: the stage still registers the baseline first (it becomes
    # champion, and the challenger is the other arm).
    trained = [make_trained("enhanced", settings), make_trained("baseline", settings)]
    run_ids = log_trained_variants(settings, trained)
    reporter = SilentReporter()
    state = run_stages(settings, [REGISTER], reporter, state=_state(trained, run_ids))
    assert state["registered"] == {
        "baseline": {"version": "1", "aliases": ["baseline", "champion"],
                     "run_id": run_ids["baseline"]},
        "enhanced": {"version": "2", "aliases": ["challenger", "enhanced"],
                     "run_id": run_ids["enhanced"]},
    }
    assert ("done", "register: ibb-direction: baseline v1 (baseline, champion), "
                    "enhanced v2 (challenger, enhanced)") in reporter.events
    # Running the stage again (a cached pipeline re-run) registers nothing new.
    again = run_stages(settings, [REGISTER], SilentReporter(), state=_state(trained, run_ids))
    assert again["registered"] == state["registered"]


def test_stage_logs_runs_the_train_stage_did_not(settings: Settings,
                                                 make_trained: MakeTrained) -> None:
    trained = [make_trained("baseline", settings)]
    state = run_stages(settings, [REGISTER], SilentReporter(), state=_state(trained, {}))
    run_id = state["trained"]["baseline"]["run_id"]
    assert state["registered"]["baseline"]["run_id"] == run_id
    run = configure(settings).client.get_run(run_id)
    assert run.data.metrics["accuracy"] == pytest.approx(0.54)
    assert run.data.tags["weights_hash"] == trained[0].weights_hash
    assert resolve(settings, "champion").data_version == trained[0].data_version
    assert count_trials(settings) == 1


def test_stage_without_training_names_the_stage_to_run(settings: Settings) -> None:
    with pytest.raises(StageError, match="train"):
        run_stages(settings, [REGISTER], SilentReporter(), state={})
