"""The local promotion policy (:mod:`finmlops.pipeline`): which decision ``decide`` acts on,
and what carrying out promote, rollback and continue does to a real MLflow registry (SQLite)
and a real experiment ledger (SQLite), once however often it is applied."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from experiment_support import experiment_in_force
from finmlops.config import Settings, public_dict
from finmlops.contracts import AbtestSummary, Action, DecisionNumbers, DecisionRecord
from finmlops.errors import StageError
from finmlops.models import TrainedVariant
from finmlops.pipeline import Chosen, apply_decision, choose_decision
from finmlops.tracking import history, log_training, register, resolve

MakeTrained = Callable[..., TrainedVariant]
NUMBERS = DecisionNumbers(metric="net_return", alpha=0.05, min_effect=0.0,
                          challenger="enhanced", reference="baseline")


def _decision(action: Action, reason: str = "r") -> DecisionRecord:
    return DecisionRecord(action=action, reason=reason, numbers=NUMBERS)


def _summary(split: DecisionRecord, paired: DecisionRecord | None) -> AbtestSummary:
    return AbtestSummary.model_validate({
        "experiment": "direction-ab", "challenger": "enhanced", "reference": "baseline",
        "metric": "net_return", "alpha": 0.05, "n_plan": 500, "min_effect": 0.0,
        "min_samples": 30, "arms": {}, "decision": split.to_json(),
        "paired_decision": None if paired is None else paired.to_json(),
        "timeline": {"split": {"days": [], "days_to_decision": None}, "paired": None},
        "days_to_decision": {"split": None, "paired": None}, "days": 0,
        "stress_windows": {}})


@pytest.fixture
def home(settings: Settings, make_trained: MakeTrained) -> Settings:
    """baseline v1 (champion) and enhanced v2 registered; the ledger holds the configured
    experiment (baseline 70, enhanced 30) as version 1."""
    from finmlops.ledger import open_ledger

    for variant in ("baseline", "enhanced"):
        trained = make_trained(variant, settings)
        run_id = log_training(settings, trained, public_dict(settings))
        register(settings, run_id, variant, trained.data_version)
    ledger = open_ledger(settings.ledger_url)
    try:
        ledger.ensure_experiment(settings.experiment)
    finally:
        ledger.close()
    return settings


def test_the_decision_acted_on_follows_the_test() -> None:
    split, paired = _decision("continue", "split"), _decision("promote", "paired")
    both = _summary(split, paired)
    assert choose_decision(both, "auto") == Chosen("paired", paired)
    assert choose_decision(both, "paired") == Chosen("paired", paired)
    assert choose_decision(both, "split") == Chosen("split", split)
    only_split = _summary(split, None)
    assert choose_decision(only_split, "auto") == Chosen("split", split)
    with pytest.raises(StageError, match=r"experiment\.shadow: true"):
        choose_decision(only_split, "paired")
    assert Chosen("paired", paired).to_json() == {**paired.to_json(), "test": "paired"}


def test_continue_changes_nothing(home: Settings) -> None:
    events = len(history(home))
    applied = apply_decision(home, Chosen("split", _decision("continue")), actor="t",
                             ledger_url=home.ledger_url)
    assert applied.to_json() == {"action": "continue", "changed": False,
                                 "note": "nothing to apply"}
    assert not applied.changed
    assert len(history(home)) == events
    assert experiment_in_force(home) == (1, {"baseline": 70, "enhanced": 30}, "config")


def test_promote_swaps_champion_and_weights_once(home: Settings) -> None:
    chosen = Chosen("paired", _decision("promote", "enhanced beats baseline"))
    first = apply_decision(home, chosen, actor="lead", ledger_url=home.ledger_url)
    assert first.changed and first.experiment is not None and first.experiment.published
    assert first.to_json()["champion"] == "2"
    assert experiment_in_force(home) == (2, {"baseline": 30, "enhanced": 70}, "decide")
    assert resolve(home, "champion").version == "2"
    audit = history(home)[-1]
    assert audit["actor"] == "lead" and audit["decision"]["test"] == "paired"
    assert audit["decision"]["versions"] == {"enhanced": "2", "baseline": "1"}
    # Again: no second promotion, and no second swap handing the traffic back.
    again = apply_decision(home, chosen, actor="lead", ledger_url=home.ledger_url)
    assert not again.changed and again.experiment is not None
    assert not again.experiment.published and again.experiment.version.version == 2
    assert experiment_in_force(home)[:2] == (2, {"baseline": 30, "enhanced": 70})


def test_rollback_of_a_promoted_challenger_hands_the_reference_everything(
        home: Settings) -> None:
    apply_decision(home, Chosen("paired", _decision("promote")), actor="t",
                   ledger_url=home.ledger_url)
    back = apply_decision(home, Chosen("paired", _decision("rollback", "enhanced loses")),
                          actor="t", ledger_url=home.ledger_url)
    assert back.changed and back.to_json()["champion"] == "1"
    assert resolve(home, "champion").version == "1"
    assert resolve(home, "2").tags["rolled_back"] == "true"
    version, weights, source = experiment_in_force(home)
    assert (version, weights, source) == (3, {"baseline": 100, "enhanced": 0}, "decide")
    again = apply_decision(home, Chosen("paired", _decision("rollback", "enhanced loses")),
                           actor="t", ledger_url=home.ledger_url)
    assert not again.changed and experiment_in_force(home)[0] == 3


def test_through_git_a_promotion_is_declared_not_carried_out(
        home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With GitOps the policy hands over the state in force and the planned one (the Git
    side is :mod:`finmlops.deploy.gitops`' and tested there); nothing moves here."""
    import finmlops.deploy.gitops as gitops
    from finmlops.deploy import PromotionState

    handed: list[tuple[PromotionState, PromotionState]] = []

    class Pushed:
        def to_json(self) -> dict[str, object]:
            return {"repo": "r", "branch": "main", "commits": ["c" * 40], "pushed": True,
                    "note": ""}

    def propose(settings: Settings, in_force: PromotionState,
                planned: PromotionState) -> Pushed:
        handed.append((in_force, planned))
        return Pushed()

    monkeypatch.setattr(gitops, "propose", propose)
    from finmlops.pipeline import propose_decision

    nothing = propose_decision(home, Chosen("split", _decision("continue")), actor="t",
                               ledger_url=home.ledger_url)
    assert nothing.to_json() == {"action": "continue", "pushed": False, "commits": [],
                                 "branch": "", "repo": "", "note": "nothing to apply"}
    assert not handed
    proposed = propose_decision(home, Chosen("paired", _decision("promote", "wins")),
                                actor="lead", ledger_url=home.ledger_url)
    [(in_force, planned)] = handed
    assert (in_force.action, in_force.aliases) == ("record", {"champion": "1"})
    assert in_force.experiment.weights == {"baseline": 70, "enhanced": 30}
    assert (planned.action, planned.reason, planned.rejected) == ("promote", "wins", [])
    assert planned.aliases == {"champion": "2", "previous-champion": "1"}
    assert planned.versions == {"enhanced": "2", "baseline": "1"}
    assert planned.decision["test"] == "paired"
    assert proposed.to_json()["weights"] == {"baseline": 30, "enhanced": 70}
    assert proposed.to_json()["declared"] == planned.aliases
    assert resolve(home, "champion").version == "1"  # the registry waits for the sync
    assert experiment_in_force(home)[0] == 1
