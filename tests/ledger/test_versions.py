"""Experiment versions: seeded from the configuration once, changed by admin or decide, the
highest in force; sample-ratio counts per version."""

from __future__ import annotations

from ledger_support import EXPERIMENT, record, served

from finmlops.config import Candidate, ExperimentSettings
from finmlops.ledger import Ledger

CONFIG = ExperimentSettings()


def with_weights(base: ExperimentSettings, **weights: int) -> ExperimentSettings:
    return base.model_copy(update={"candidates": [Candidate(name=n, weight=w)
                                                  for n, w in weights.items()]})


def test_the_configuration_is_seeded_once(ledger: Ledger) -> None:
    first = ledger.ensure_experiment(CONFIG)
    again = ledger.ensure_experiment(CONFIG)
    assert (first.version, again.version, first.source) == (1, 1, "config")
    assert ledger.latest_version(EXPERIMENT) == 1
    assert first.weights == {"baseline": 70.0, "enhanced": 30.0}


def test_an_admin_change_survives_a_restart_until_the_file_changes(ledger: Ledger) -> None:
    ledger.ensure_experiment(CONFIG)
    admin = ledger.publish_experiment(with_weights(CONFIG, baseline=50, enhanced=50),
                                      source="admin", actor="admin-token:1234", reason="test")
    assert admin.version == 2
    # a restart with the same file keeps the admin's version in force
    assert ledger.ensure_experiment(CONFIG).version == 2
    # an edited file is a new version
    edited = ledger.ensure_experiment(with_weights(CONFIG, baseline=90, enhanced=10))
    assert (edited.version, edited.source) == (3, "config")
    versions = ledger.experiment_versions(EXPERIMENT)
    assert [(v.version, v.source, v.actor) for v in versions] == [
        (1, "config", "finmlops.yaml"), (2, "admin", "admin-token:1234"),
        (3, "config", "finmlops.yaml")]
    current = ledger.experiment(EXPERIMENT)
    assert current is not None and current.weights == {"baseline": 90.0, "enhanced": 10.0}


def test_assignments_count_keys_once_per_version_and_never_pinned(ledger: Ledger) -> None:
    record(ledger, [
        served("a", "IBB:2020-01-02"), served("b", "IBB:2020-01-02"),  # a repeat: one key
        served("c", "IBB:2020-01-03", arm="enhanced"),
        served("d", None, assignment="random"), served("e", None, assignment="random"),
        served("f", "IBB:2020-01-03", arm="enhanced", assignment="pinned"),
        served("g", "IBB:2020-01-02", version=2),
        served("h", None, arm="baseline", assignment="direct", experiment=None),
    ])
    assert ledger.assignment_counts(EXPERIMENT) == {1: {"baseline": 3, "enhanced": 1},
                                                    2: {"baseline": 1}}
