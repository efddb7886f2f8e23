"""The alias rules as pure functions over ``{alias: version}`` maps (the registry applies them).

- ``champion``: set once, by the first registered version of the starting variant (the
  experiment's default arm, else ``baseline``, else the first registered); afterwards moved
  only by a promotion.
- ``challenger``: the newest registered version; removed by a roll-back.
- ``previous-champion``: the champion before the last promotion that changed it.
- ``<variant>``: the newest version of that variant.
"""

from __future__ import annotations

from collections.abc import Mapping

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
RESERVED_ALIASES = frozenset({CHAMPION, CHALLENGER, PREVIOUS_CHAMPION, "latest"})

Aliases = Mapping[str, str]


def after_register(aliases: Aliases, version: str, variant: str,
                   baseline: str | None) -> dict[str, str]:
    """The aliases once ``version`` of ``variant`` is registered; ``baseline`` names the
    variant that starts as champion (``None``: whichever comes first)."""
    out = dict(aliases)
    out[CHALLENGER] = version
    out[variant] = version
    if CHAMPION not in out and (baseline is None or baseline == variant):
        out[CHAMPION] = version
    return out


def after_promote(aliases: Aliases, target: str) -> dict[str, str]:
    """The aliases once ``target`` is champion; unchanged when it already was."""
    out = dict(aliases)
    old = out.get(CHAMPION)
    if old == target:
        return out
    if old is not None:
        out[PREVIOUS_CHAMPION] = old
    out[CHAMPION] = target
    return out


def after_rollback(aliases: Aliases) -> dict[str, str]:
    """The aliases once the challenger is rejected; never touches the champion (a challenger
    that already is the champion stays)."""
    out = dict(aliases)
    if out.get(CHALLENGER) is not None and out.get(CHALLENGER) != out.get(CHAMPION):
        del out[CHALLENGER]
    return out


def changes(before: Aliases, after: Aliases) -> tuple[dict[str, str], list[str]]:
    """What to set and what to delete to turn ``before`` into ``after``."""
    to_set = {a: v for a, v in after.items() if before.get(a) != v}
    return to_set, sorted(set(before) - set(after))
