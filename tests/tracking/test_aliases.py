"""The alias rules hold for every sequence of registrations, promotions and roll-backs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from finmlops.tracking.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    after_promote,
    after_register,
    after_rollback,
    changes,
)

VARIANTS = ("baseline", "enhanced", "wide")
_op = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(VARIANTS)),
    st.tuples(st.just("promote"), st.integers(0, 30)),
    st.tuples(st.just("rollback"), st.just(0)),
)


@given(ops=st.lists(_op, max_size=40), baseline=st.sampled_from([None, *VARIANTS]))
def test_alias_rules_hold_for_any_history(ops: list[tuple[str, object]],
                                          baseline: str | None) -> None:
    aliases: dict[str, str] = {}
    versions: list[tuple[str, str]] = []  # (version, variant), oldest first
    rolled_back = False
    for kind, arg in ops:
        before = dict(aliases)
        if kind == "register":
            version, variant = str(len(versions) + 1), str(arg)
            versions.append((version, variant))
            aliases = after_register(aliases, version, variant, baseline)
            rolled_back = False
            if CHAMPION in before:
                assert aliases[CHAMPION] == before[CHAMPION]
            else:
                assert (CHAMPION in aliases) == (baseline in (None, variant))
        elif kind == "promote":
            if not versions:
                continue
            target = versions[int(str(arg)) % len(versions)][0]
            aliases = after_promote(aliases, target)
            assert aliases[CHAMPION] == target
            assert after_promote(aliases, target) == aliases  # idempotent
            if before.get(CHAMPION) not in (None, target):
                assert aliases[PREVIOUS_CHAMPION] == before[CHAMPION]
            else:
                assert aliases.get(PREVIOUS_CHAMPION) == before.get(PREVIOUS_CHAMPION)
        else:
            aliases = after_rollback(aliases)
            assert after_rollback(aliases) == aliases  # idempotent
            assert aliases.get(CHAMPION) == before.get(CHAMPION)
            if before.get(CHALLENGER) != before.get(CHAMPION):
                rolled_back = True

        # Every alias names a registered version; champion never disappears once set.
        assert set(aliases.values()) <= {v for v, _ in versions}
        assert CHAMPION in aliases or CHAMPION not in before
        # Variant aliases: the newest version of the variant.
        for variant in {n for _, n in versions}:
            assert aliases[variant] == max((v for v, n in versions if n == variant), key=int)
        # The challenger: the newest version, unless it was rolled back since.
        if versions and not rolled_back:
            assert aliases[CHALLENGER] == versions[-1][0]
        if rolled_back:
            assert CHALLENGER not in aliases
        # Applying the difference turns the old map into the new one.
        to_set, to_delete = changes(before, aliases)
        rebuilt = {a: v for a, v in before.items() if a not in to_delete} | to_set
        assert rebuilt == aliases
