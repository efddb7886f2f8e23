"""Promotion and roll-back move aliases, record who/when/why, and are idempotent."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

import pytest

from finmlops.config import Settings, public_dict
from finmlops.errors import ModelNotFoundError
from finmlops.models import TrainedVariant
from finmlops.tracking import (
    TrackingError,
    arm_versions,
    carry_out,
    declared_aliases,
    history,
    list_models,
    log_training,
    planned_aliases,
    promote,
    register,
    resolve,
    rollback,
    set_alias,
)

MakeTrained = Callable[..., TrainedVariant]
DECISION = {"decision": "promote", "p_value": 0.003, "lift": 0.0004, "n": [812, 790]}


@pytest.fixture
def two_arms(settings: Settings, make_trained: MakeTrained) -> Settings:
    """baseline v1 (champion) and enhanced v2 (challenger) registered."""
    for variant in ("baseline", "enhanced"):
        trained = make_trained(variant, settings)
        run_id = log_training(settings, trained, public_dict(settings))
        register(settings, run_id, variant, trained.data_version)
    return settings


def _aliases(settings: Settings) -> dict[str, str]:
    return {a: row["version"] for row in list_models(settings) for a in row["aliases"]}


def test_promote_moves_champion_and_records_who_when_why(two_arms: Settings) -> None:
    result = promote(two_arms, actor="abtest", reason="enhanced wins", decision=DECISION)
    assert result["changed"] is True
    assert (result["champion"], result["previous_champion"]) == ("2", "1")
    assert _aliases(two_arms) == {"champion": "2", "challenger": "2", "enhanced": "2",
                                  "previous-champion": "1", "baseline": "1"}
    tags = resolve(two_arms, "champion").tags
    assert tags["promoted_by"] == "abtest" and tags["promotion_reason"] == "enhanced wins"
    assert tags["promoted_at"].endswith("+00:00")
    assert json.loads(tags["promotion_decision"]) == DECISION

    again = promote(two_arms, actor="abtest", reason="enhanced wins", decision=DECISION)
    assert again["changed"] is False and again["champion"] == "2"
    assert again["previous_champion"] == "1"
    events = history(two_arms)
    assert [e["action"] for e in events] == ["register", "register", "promote"]
    last = events[-1]
    assert (last["version"], last["previous_version"], last["actor"]) == ("2", "1", "abtest")
    assert last["decision"] == DECISION and last["seq"] == 3


def test_rollback_drops_the_challenger_and_keeps_the_champion(two_arms: Settings) -> None:
    result = rollback(two_arms, actor="abtest", reason="enhanced loses", decision=DECISION)
    assert result["changed"] is True and result["version"] == "2"
    aliases = _aliases(two_arms)
    assert aliases == {"champion": "1", "baseline": "1", "enhanced": "2"}
    tags = resolve(two_arms, "2").tags
    assert tags["rolled_back"] == "true" and tags["rollback_reason"] == "enhanced loses"
    assert tags["rolled_back_by"] == "abtest"
    assert [r["status"] for r in list_models(two_arms)] == ["rolled_back", ""]

    assert rollback(two_arms, actor="abtest", reason="again", decision={})["changed"] is False
    assert _aliases(two_arms) == aliases
    with pytest.raises(ModelNotFoundError, match="no challenger"):
        promote(two_arms, actor="cli", reason="nothing to promote", decision={})
    assert [e["action"] for e in history(two_arms)] == ["register", "register", "rollback"]
    # Promoted explicitly after all: no longer listed as rolled back.
    promote(two_arms, actor="alice", reason="second look", decision={}, version="2")
    assert [r["status"] for r in list_models(two_arms)] == ["", ""]


def test_rollback_never_touches_a_challenger_that_is_champion(two_arms: Settings) -> None:
    promote(two_arms, actor="abtest", reason="win", decision=DECISION)
    result = rollback(two_arms, actor="abtest", reason="oops", decision={})
    assert result["changed"] is False
    assert _aliases(two_arms)["champion"] == "2"


def test_set_alias_undoes_a_promotion_and_is_audited(two_arms: Settings) -> None:
    promote(two_arms, actor="abtest", reason="win", decision=DECISION)
    result = set_alias(two_arms, "champion", "1", actor="alice", reason="incident 42")
    assert result["changed"] is True and result["previous_version"] == "2"
    assert resolve(two_arms, "champion").version == "1"
    assert set_alias(two_arms, "champion", "1", actor="alice", reason="x")["changed"] is False
    last = history(two_arms)[-1]
    assert (last["action"], last["alias"], last["actor"]) == ("set_alias", "champion", "alice")
    with pytest.raises(ModelNotFoundError):
        set_alias(two_arms, "champion", "9", actor="alice", reason="typo")


def test_explicit_version_and_missing_reasons(two_arms: Settings) -> None:
    with pytest.raises(TrackingError, match="reason or a decision"):
        promote(two_arms, actor="cli", reason="  ", decision={})
    with pytest.raises(ModelNotFoundError):
        promote(two_arms, actor="cli", reason="x", decision={}, version="5")
    result = promote(two_arms, actor="cli", reason="pin", decision={}, version="1")
    assert result["changed"] is False  # already champion


def test_history_is_empty_before_anything_is_registered(settings: Settings) -> None:
    assert history(settings) == []


def test_arm_versions_are_the_arms_variant_aliases(two_arms: Settings,
                                                   make_trained: MakeTrained) -> None:
    """A retrained baseline (v3) takes ``challenger``; the enhanced arm is still v2."""
    trained = make_trained("baseline", two_arms, bias=1.0)
    register(two_arms, log_training(two_arms, trained, public_dict(two_arms)), "baseline",
             trained.data_version)
    assert resolve(two_arms, "challenger").version == "3"
    assert arm_versions(two_arms, "enhanced", "baseline") == {"enhanced": "2", "baseline": "3"}


@pytest.mark.parametrize(("action", "promoted_first"), [
    ("promote", False), ("promote", True), ("rollback", False), ("rollback", True)])
def test_carry_out_follows_the_rule_the_git_record_declares(
        two_arms: Settings, action: Literal["promote", "rollback"],
        promoted_first: bool) -> None:
    """Acting directly and declaring through Git are one rule: after ``carry_out`` the
    registry's declared aliases and rejections are what ``planned_aliases`` plans, and
    carrying it out again changes nothing."""
    if promoted_first:
        promote(two_arms, actor="abtest", reason="win", decision=DECISION, version="2")
    before = declared_aliases(two_arms)
    planned, rejected = planned_aliases(_aliases(two_arms), action, "2", "1")
    first = carry_out(two_arms, action, "2", "1", actor="abtest", reason="r",
                      decision=DECISION)
    assert first["changed"] is (planned != before or bool(rejected))
    assert declared_aliases(two_arms) == planned
    assert [v for v in ("1", "2") if resolve(two_arms, v).tags.get("rolled_back") == "true"
            ] == rejected
    events = len(history(two_arms))
    again = carry_out(two_arms, action, "2", "1", actor="abtest", reason="r",
                      decision=DECISION)
    assert again["changed"] is False and declared_aliases(two_arms) == planned
    assert len(history(two_arms)) == events


def test_rolling_back_a_promoted_challenger_restores_the_reference(two_arms: Settings) -> None:
    carry_out(two_arms, "promote", "2", "1", actor="abtest", reason="win", decision=DECISION)
    result = carry_out(two_arms, "rollback", "2", "1", actor="abtest", reason="loses",
                       decision=DECISION)
    assert (result["changed"], result["champion"], result["version"]) == (True, "1", "2")
    assert result["restored"]["champion"] == "1"
    assert result["restored"]["previous_champion"] == "2"
    assert _aliases(two_arms)["champion"] == "1"
    assert [e["action"] for e in history(two_arms)] == [
        "register", "register", "promote", "promote", "rollback"]
