"""The registry's promotion aliases as declared state, for promotion through Git.

A promotion record (``finmlops.deploy.gitops``) declares which versions carry ``champion``
and ``previous-champion`` and which versions are rejected. :func:`planned_aliases` computes
that declaration from the aliases in force and an A/B action, with the same rules as
:func:`~finmlops.tracking.promote` and :func:`~finmlops.tracking.rollback`;
:func:`sync_aliases` makes the registry match a declaration, whatever it held before (so
applying the record a ``git revert`` restored undoes a promotion). ``challenger`` and the
variant aliases follow registrations, not promotions, and are left alone, except that a
rejected version loses ``challenger``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finmlops.config import Settings
from finmlops.tracking._client import configure, translate
from finmlops.tracking.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, after_promote
from finmlops.tracking.promotion import decision_json
from finmlops.tracking.registry import (
    append_audit,
    apply_aliases,
    current_aliases,
    now_iso,
    registry_versions,
)

DECLARED = (CHAMPION, PREVIOUS_CHAMPION)
"""The aliases a promotion record declares."""


def planned_aliases(current: Mapping[str, str], action: str, challenger: str,
                    reference: str) -> tuple[dict[str, str], list[str]]:
    """``(declared aliases, rejected versions)`` once ``action`` is carried out on the
    versions behind the challenger and reference arms (pure).

    ``promote`` makes the challenger's version champion (the old one becomes
    previous-champion); ``rollback`` rejects the challenger's version and, when it had been
    promoted, makes the reference's version champion again. Anything else changes nothing."""
    declared = {a: v for a, v in current.items() if a in DECLARED}
    rejected: list[str] = []
    if action == "promote":
        declared = {a: v for a, v in after_promote(declared, challenger).items()
                    if a in DECLARED}
    elif action == "rollback":
        if declared.get(CHAMPION) == challenger:
            declared = {a: v for a, v in after_promote(declared, reference).items()
                        if a in DECLARED}
        rejected = [challenger]
    return declared, rejected


@translate
def declared_aliases(settings: Settings) -> dict[str, str]:
    """The declared aliases (``champion``, ``previous-champion``) in force."""
    return {a: v for a, v in current_aliases(configure(settings)).items() if a in DECLARED}


@translate
def sync_aliases(settings: Settings, declared: Mapping[str, str], *, rejected: Sequence[str],
                 actor: str, reason: str, decision: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Make the registry's ``champion`` and ``previous-champion`` exactly ``declared``
    (setting, moving or removing them), tag each ``rejected`` version ``rolled_back`` and
    drop ``challenger`` from it, tag a new champion ``promoted_*``; one audit event when
    anything changed. Idempotent: a registry that already matches changes nothing."""
    from finmlops.errors import ModelNotFoundError

    unknown = [a for a in declared if a not in DECLARED]
    if unknown:
        raise ValueError(f"not a declared alias: {unknown[0]!r}")
    tracker = configure(settings)
    client, name = tracker.client, tracker.registered_model
    existing = {str(mv.version) for mv in registry_versions(tracker)}
    missing = sorted({*declared.values(), *rejected} - existing, key=int)
    if missing:
        raise ModelNotFoundError(f"model {name!r} has no version {missing[0]}: the record "
                                 "names a version this registry does not hold")
    before = current_aliases(tracker)

    def rule(aliases: dict[str, str]) -> dict[str, str]:
        out = {a: v for a, v in aliases.items() if a not in DECLARED}
        out.update(declared)
        if out.get(CHALLENGER) in set(rejected) and out.get(CHALLENGER) != out.get(CHAMPION):
            del out[CHALLENGER]
        return out

    changed = apply_aliases(tracker, rule)
    at = now_iso()
    tagged = []
    for version in rejected:
        tags = dict(client.get_model_version(name, version).tags or {})
        if tags.get("rolled_back") != "true":
            for key, value in {"rolled_back": "true", "rolled_back_by": actor,
                               "rolled_back_at": at, "rollback_reason": reason,
                               "rollback_decision": decision_json(decision)}.items():
                client.set_model_version_tag(name, version, key, value)
            tagged.append(version)
    champion = declared.get(CHAMPION)
    if champion is not None and before.get(CHAMPION) != champion:
        for key, value in {"promoted_by": actor, "promoted_at": at, "promotion_reason": reason,
                           "promotion_decision": decision_json(decision)}.items():
            client.set_model_version_tag(name, champion, key, value)
        tagged.append(champion)
    if changed or tagged:
        append_audit(tracker, {"action": "sync", "alias": CHAMPION, "version": champion,
                               "previous_version": before.get(CHAMPION), "actor": actor,
                               "at": at, "reason": reason, "declared": dict(declared),
                               "rejected": list(rejected), "decision": dict(decision or {})})
    return {"action": "sync", "changed": bool(changed or tagged), "aliases": changed,
            "tagged": sorted(set(tagged), key=int), "champion": champion,
            "previous_champion": before.get(CHAMPION)}
