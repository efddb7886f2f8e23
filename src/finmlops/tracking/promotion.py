"""Promotion mechanics: moving aliases, auditable and idempotent.

Every alias change is appended to the registered model's audit trail (tags ``audit.NNNNNN``,
read back by :func:`history`); a promotion also tags the version with ``promoted_by``,
``promoted_at``, ``promotion_reason`` and ``promotion_decision`` (JSON). Applying the same
promotion or roll-back twice changes nothing the second time. :func:`carry_out` is what an
A/B action means for the registry, on the versions behind the arms (:func:`arm_versions`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from finmlops.config import Settings
from finmlops.errors import ModelNotFoundError, TrackingError
from finmlops.tracking._client import configure, translate
from finmlops.tracking.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    after_promote,
    after_rollback,
)
from finmlops.tracking.registry import (
    AUDIT_PREFIX,
    alias_version,
    append_audit,
    apply_aliases,
    check_alias,
    current_aliases,
    now_iso,
    resolve,
)

_MAX_TAG = 90_000


def decision_json(decision: Mapping[str, Any] | None) -> str:
    text = json.dumps(dict(decision or {}), sort_keys=True, default=str)
    return text if len(text) <= _MAX_TAG else json.dumps({"truncated": True})


def _require_why(reason: str, decision: Mapping[str, Any] | None) -> None:
    if not reason.strip() and not decision:
        raise TrackingError("an alias change needs a reason or a decision")


def _version_tags(tracker: Any, version: str) -> dict[str, str]:
    return dict(tracker.client.get_model_version(tracker.registered_model, version).tags or {})


def _existing_version(tracker: Any, version: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(tracker.client.get_model_version(tracker.registered_model,
                                                    str(int(version))).version)
    except (MlflowException, ValueError):
        raise ModelNotFoundError(
            f"model {tracker.registered_model!r} has no version {version!r}") from None


@translate
def set_alias(settings: Settings, alias: str, version: str, *, actor: str, reason: str,
              decision: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (recorded in the audit trail); a no-op when it already
    does. Undo a promotion with ``set_alias(settings, "champion", <previous-champion>)``."""
    check_alias(alias)
    _require_why(reason, decision)
    tracker = configure(settings)
    version = _existing_version(tracker, version)
    before = alias_version(tracker, alias)
    result: dict[str, Any] = {"action": "set_alias", "alias": alias, "version": version,
                              "previous_version": before, "changed": before != version}
    if before == version:
        return result
    tracker.client.set_registered_model_alias(tracker.registered_model, alias, version)
    at = now_iso()
    append_audit(tracker, {"action": "set_alias", "alias": alias, "version": version,
                           "previous_version": before, "actor": actor, "at": at,
                           "reason": reason, "decision": dict(decision or {})})
    return {**result, "actor": actor, "at": at, "reason": reason}


@translate
def promote(settings: Settings, *, actor: str, reason: str,
            decision: Mapping[str, Any] | None = None,
            version: str | None = None) -> dict[str, Any]:
    """Make the challenger (or ``version``) champion; the old champion becomes
    ``previous-champion``. Returns what happened; ``changed`` is false when it already was."""
    _require_why(reason, decision)
    tracker = configure(settings)
    client, name = tracker.client, tracker.registered_model
    if version is None:
        target = alias_version(tracker, CHALLENGER)
        if target is None:
            raise ModelNotFoundError(f"model {name!r} has no challenger to promote")
    else:
        target = _existing_version(tracker, version)
    before = current_aliases(tracker)
    old = before.get(CHAMPION)
    result: dict[str, Any] = {"action": "promote", "champion": target, "previous_champion": old,
                              "changed": old != target}
    if old == target:
        result["previous_champion"] = before.get(PREVIOUS_CHAMPION)
        return result
    at = now_iso()
    apply_aliases(tracker, lambda current: after_promote(current, target))
    for key, value in {"promoted_by": actor, "promoted_at": at, "promotion_reason": reason,
                       "promotion_decision": decision_json(decision)}.items():
        client.set_model_version_tag(name, target, key, value)
    if _version_tags(tracker, target).get("rolled_back") == "true":  # promoted after all
        client.set_model_version_tag(name, target, "rolled_back", "false")
    append_audit(tracker, {"action": "promote", "alias": CHAMPION, "version": target,
                           "previous_version": old, "actor": actor, "at": at,
                           "reason": reason, "decision": dict(decision or {})})
    return {**result, "actor": actor, "at": at, "reason": reason}


@translate
def rollback(settings: Settings, *, actor: str, reason: str,
             decision: Mapping[str, Any] | None = None,
             version: str | None = None) -> dict[str, Any]:
    """Reject the challenger (or ``version``, e.g. the version an A/B arm served): its version
    is tagged ``rolled_back`` and the ``challenger`` alias, when it points there, removed; the
    champion does not move. A no-op when there is nothing to reject, the target is the
    champion, or it already was rolled back."""
    _require_why(reason, decision)
    tracker = configure(settings)
    client, name = tracker.client, tracker.registered_model
    before = current_aliases(tracker)
    champion = before.get(CHAMPION)
    target = before.get(CHALLENGER) if version is None else _existing_version(tracker, version)
    result: dict[str, Any] = {"action": "rollback", "version": target, "champion": champion,
                              "changed": False}
    if target is None or target == champion:
        return result
    drops_alias = before.get(CHALLENGER) == target
    if not drops_alias and _version_tags(tracker, target).get("rolled_back") == "true":
        return result
    at = now_iso()
    if drops_alias:
        apply_aliases(tracker, after_rollback)
    for key, value in {"rolled_back": "true", "rolled_back_by": actor, "rolled_back_at": at,
                       "rollback_reason": reason,
                       "rollback_decision": decision_json(decision)}.items():
        client.set_model_version_tag(name, target, key, value)
    append_audit(tracker, {"action": "rollback", "alias": CHALLENGER, "version": target,
                           "actor": actor, "at": at,
                           "reason": reason, "decision": dict(decision or {})})
    return {**result, "changed": True, "actor": actor, "at": at, "reason": reason}


@translate
def history(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded alias change (register, promote, rollback, set_alias), oldest first."""
    from mlflow.exceptions import MlflowException

    tracker = configure(settings)
    try:
        rm = tracker.client.get_registered_model(tracker.registered_model)
    except MlflowException:
        return []
    events = [json.loads(v) for k, v in (rm.tags or {}).items() if k.startswith(AUDIT_PREFIX)]
    return sorted(events, key=lambda e: int(e.get("seq", 0)))


@translate
def arm_versions(settings: Settings, challenger: str, reference: str) -> dict[str, str]:
    """The registered version behind each A/B arm. Each arm is served by its variant alias
    (``finmlops serve``'s default), so a decision acts on these versions, never on whatever
    the ``challenger`` alias (the newest registration, e.g. a retrained baseline) holds."""
    return {arm: resolve(settings, arm).version for arm in (challenger, reference)}


@translate
def carry_out(settings: Settings, action: Literal["promote", "rollback"], challenger: str,
              reference: str, *, actor: str, reason: str,
              decision: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An A/B action on the registry, for the versions behind the ``challenger`` and
    ``reference`` arms: ``promote`` makes the challenger's version champion; ``rollback``
    rejects it and, when it had been promoted, makes the reference's version champion again
    (the rule :func:`~finmlops.tracking.planned_aliases` declares for Git). Idempotent."""
    if action == "promote":
        return promote(settings, version=challenger, actor=actor, reason=reason,
                       decision=decision)
    restored = None
    if alias_version(configure(settings), CHAMPION) == challenger:
        restored = promote(settings, version=reference, actor=actor, reason=reason,
                           decision=decision)
    result = rollback(settings, version=challenger, actor=actor, reason=reason,
                      decision=decision)
    if restored is not None:
        result.update(restored=restored, changed=True, champion=restored["champion"])
    return result
