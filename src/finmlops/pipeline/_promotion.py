"""The local promotion policy: what an A/B decision or a promotion record means for the
registry's aliases, the experiment's weights (a version in the ledger) and, on the cluster,
Git.

``promote`` makes the challenger arm's version champion and swaps the arms' weights;
``rollback`` rejects it (the reference's version is champion again when the challenger had
been promoted) and sends the reference all traffic; ``continue`` and ``invalid`` change
nothing. :func:`apply_decision` carries that out directly, :func:`propose_decision` hands it
to Git as the environment's promotion record (``gitops.enabled``) and :func:`apply_record`
puts a record in force. It lives here, not in ``tracking``, because it joins the registry
(:mod:`finmlops.tracking`), the weights rule (:func:`finmlops.abtest.weights_after`) and the
promotion record (:mod:`finmlops.deploy.gitops`), which the layers keep apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from finmlops.config import ExperimentSettings, Settings
from finmlops.contracts import AbtestSummary, Action, DecisionRecord
from finmlops.errors import ConfigError, StageError

if TYPE_CHECKING:
    from finmlops.deploy import PromotionFile, PromotionState
    from finmlops.ledger import ExperimentVersion

NOTHING = "nothing to apply"


@dataclass(frozen=True)
class Chosen:
    """The decision ``decide`` acts on and the test that made it."""

    test: Literal["split", "paired"]
    record: DecisionRecord

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "test": self.test}


@dataclass(frozen=True)
class InForce:
    """The experiment version in force after a change; ``published``: the change made it."""

    version: ExperimentVersion
    published: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.version.to_json(), "published": self.published}


@dataclass(frozen=True)
class Applied:
    """What carrying out a decision did: the registry's answer
    (:func:`finmlops.tracking.carry_out`) and the weights in force; both ``None`` for an
    action that changes nothing."""

    action: Action
    registry: dict[str, Any] | None = None
    experiment: InForce | None = None

    @property
    def changed(self) -> bool:
        return self.registry is not None and bool(self.registry["changed"])

    def to_json(self) -> dict[str, Any]:
        if self.registry is None or self.experiment is None:
            return {"action": self.action, "changed": False, "note": NOTHING}
        return {**self.registry, "experiment": self.experiment.to_json()}


@dataclass(frozen=True)
class Proposed:
    """What handing a decision to Git did: the push (``repo``, ``branch``, ``commits``,
    ``pushed``, ``note``) and the state it declares (``None`` when there is nothing to
    declare)."""

    action: Action
    pushed: dict[str, object]
    planned: PromotionState | None = None

    def to_json(self) -> dict[str, Any]:
        if self.planned is None:
            return {"action": self.action, **self.pushed}
        return {"action": self.action, **self.pushed, "declared": self.planned.aliases,
                "weights": self.planned.experiment.weights}


@dataclass(frozen=True)
class RecordApplied:
    """What putting a promotion record in force did (``state`` ``None``: the record declares
    nothing yet, so nothing was touched)."""

    environment: str
    action: str | None = None
    registry: dict[str, Any] | None = None
    experiment: InForce | None = None

    @property
    def changed(self) -> bool:
        return self.registry is not None and self.experiment is not None and bool(
            self.registry["changed"] or self.experiment.published)

    @property
    def note(self) -> str | None:
        return "nothing declared yet (no promotion so far)" if self.registry is None else None

    def to_json(self) -> dict[str, Any]:
        if self.registry is None or self.experiment is None:
            return {"environment": self.environment, "changed": False, "note": self.note}
        return {"environment": self.environment, "action": self.action,
                "changed": self.changed, "registry": self.registry,
                "experiment": self.experiment.to_json()}


def choose_decision(summary: AbtestSummary, test: str) -> Chosen:
    """The decision for ``test``: ``split``, ``paired`` (an error without shadow outcomes)
    or ``auto`` (paired when shadow outcomes exist, else split)."""
    paired = summary.paired_decision
    if paired is None:
        if test == "paired":
            raise StageError("no paired outcomes: run the experiment with "
                             "experiment.shadow: true")
        return Chosen("split", summary.decision)
    if test == "split":
        return Chosen("split", summary.decision)
    return Chosen("paired", paired)


def _audit(chosen: Chosen, versions: dict[str, str], experiment: str) -> dict[str, Any]:
    """The decision as the registry's audit trail records it."""
    numbers = chosen.record.numbers
    return {"action": chosen.record.action, "test": chosen.test,
            "reason": chosen.record.reason, "experiment": experiment,
            "challenger": numbers.challenger, "reference": numbers.reference,
            "versions": versions, "sequential": _sequential(chosen)}


def _sequential(chosen: Chosen) -> dict[str, Any] | None:
    seq = chosen.record.numbers.sequential
    return None if seq is None else seq.to_json()


def apply_decision(settings: Settings, chosen: Chosen, *, actor: str,
                   ledger_url: str) -> Applied:
    """Promote or roll back in the registry, then put the matching weights in force: a new
    experiment version in the ledger, which every replica's poll picks up."""
    from finmlops.tracking import arm_versions, carry_out

    action = chosen.record.action
    if action not in ("promote", "rollback"):
        return Applied(action)
    chal, ref = chosen.record.numbers.challenger, chosen.record.numbers.reference
    versions = arm_versions(settings, chal, ref)
    registry = carry_out(settings, action, versions[chal], versions[ref], actor=actor,
                         reason=chosen.record.reason,
                         decision=_audit(chosen, versions, settings.experiment.name))
    experiment = _publish_weights(settings, ledger_url, chosen, actor)
    return Applied(action, registry, experiment)


def _publish_weights(settings: Settings, ledger_url: str, chosen: Chosen,
                     actor: str) -> InForce:
    """The experiment in force with the weights the action calls for, as a new version —
    once: when the version in force already is this action's (``decide`` published it, or
    its weights are already the ones called for), applying again changes nothing (a
    promotion's swap of weights applied twice would hand the traffic back)."""
    from finmlops.abtest import weights_after
    from finmlops.ledger import config_hash, open_ledger

    action, numbers = chosen.record.action, chosen.record.numbers
    ledger = open_ledger(ledger_url, create=False, timeout_s=settings.ledger.write_timeout_s)
    try:
        current = ledger.experiment(settings.experiment.name)
        base = current.config if current is not None else settings.experiment
        config = _with_weights(base, weights_after(action, base, numbers.challenger,
                                                   numbers.reference))
        if current is not None and (
                config_hash(config) == config_hash(current.config)
                or (current.source == "decide" and current.reason.startswith(f"{action}:"))):
            return InForce(current, published=False)
        version = ledger.publish_experiment(config, source="decide", actor=actor,
                                            reason=f"{action}: {chosen.record.reason}")
    finally:
        ledger.close()
    return InForce(version, published=True)


def _with_weights(experiment: ExperimentSettings,
                  candidates: list[dict[str, Any]]) -> ExperimentSettings:
    return ExperimentSettings(**{**experiment.model_dump(mode="json"),
                                 "candidates": candidates})


def propose_decision(settings: Settings, chosen: Chosen, *, actor: str,
                     ledger_url: str) -> Proposed:
    """The decision as a GitOps change (``gitops.enabled``): a commit to the environment's
    promotion record, or a branch for review; nothing for ``continue``/``invalid``."""
    from finmlops.deploy.gitops import propose

    action = chosen.record.action
    if action not in ("promote", "rollback"):
        return Proposed(action, {"pushed": False, "commits": [], "branch": "", "repo": "",
                                 "note": NOTHING})
    in_force, planned = _promotion_states(settings, chosen, actor=actor,
                                          ledger_url=ledger_url)
    return Proposed(action, propose(settings, in_force, planned).to_json(), planned)


def _promotion_states(settings: Settings, chosen: Chosen, *, actor: str,
                      ledger_url: str) -> tuple[PromotionState, PromotionState]:
    """``(in force, planned)`` promotion states: the registry's declared aliases and the
    ledger's experiment now, and what carrying out the decision declares."""
    from finmlops.abtest import weights_after
    from finmlops.deploy import PromotionState
    from finmlops.ledger import open_ledger
    from finmlops.tracking import arm_versions, declared_aliases, planned_aliases

    action, numbers = chosen.record.action, chosen.record.numbers
    chal, ref = numbers.challenger, numbers.reference
    versions = arm_versions(settings, chal, ref)
    ledger = open_ledger(ledger_url, create=False, timeout_s=settings.ledger.write_timeout_s)
    try:
        current = ledger.experiment(settings.experiment.name)
    finally:
        ledger.close()
    experiment = current.config if current is not None else settings.experiment
    aliases = declared_aliases(settings)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    in_force = PromotionState(
        registered_model=settings.registered_model, aliases=aliases, experiment=experiment,
        versions=versions, action="record", actor=actor, decided_at=now,
        reason="the state in force before the first promotion through Git")
    declared, rejected = planned_aliases(aliases, action, versions[chal], versions[ref])
    planned = PromotionState(
        registered_model=settings.registered_model, aliases=declared,
        experiment=_with_weights(experiment, weights_after(action, experiment, chal, ref)),
        versions=versions, rejected=rejected, action=action, actor=actor, decided_at=now,
        reason=chosen.record.reason,
        decision={"test": chosen.test, "challenger": chal, "reference": ref,
                  "sequential": _sequential(chosen)})
    return in_force, planned


def put_experiment_in_force(settings: Settings, config: ExperimentSettings, *, source: str,
                            actor: str, reason: str) -> InForce:
    """``config`` as the experiment version in force in the ledger (a new version unless
    the one in force already has exactly this configuration)."""
    from finmlops.ledger import config_hash, open_ledger

    ledger = open_ledger(settings.ledger_url, create=False,
                         timeout_s=settings.ledger.write_timeout_s)
    try:
        current = ledger.experiment(config.name)
        if current is not None and config_hash(current.config) == config_hash(config):
            return InForce(current, published=False)
        version = ledger.publish_experiment(config, source=source, actor=actor, reason=reason)
    finally:
        ledger.close()
    return InForce(version, published=True)


def apply_record(settings: Settings, record: PromotionFile, actor: str) -> RecordApplied:
    """Make the registry and the ledger match ``record``; what changed."""
    from finmlops.tracking import sync_aliases

    state = record.state
    if state is None:
        return RecordApplied(record.environment)
    g = settings.gitops
    if g.enabled and g.environment != record.environment:
        raise ConfigError(f"the record is environment {record.environment!r}'s; this is "
                          f"{g.environment!r}")
    if state.registered_model != settings.registered_model:
        raise ConfigError(f"the record declares model {state.registered_model!r}, the "
                          f"settings serve {settings.registered_model!r}")
    if state.experiment.name != settings.experiment.name:
        raise ConfigError(f"the record declares experiment {state.experiment.name!r}, the "
                          f"settings run {settings.experiment.name!r}")
    reason = f"{state.action}: {state.reason}"
    aliases = sync_aliases(settings, state.aliases, rejected=state.rejected, actor=actor,
                           reason=reason, decision=state.decision)
    experiment = put_experiment_in_force(settings, state.experiment, source="gitops",
                                         actor=actor, reason=reason)
    return RecordApplied(record.environment, state.action, aliases, experiment)
