"""The router's rules hold for every weight vector and key (hypothesis), and the split is honest."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from finmlops.errors import BadRequestError
from finmlops.serving.router import Choice, Router, candidates_from_json, key_point, parse_route

names = st.lists(st.text("abcdefgh_", min_size=1, max_size=6), min_size=1, max_size=5,
                 unique=True)


@st.composite
def routers(draw: st.DrawFn) -> Router:
    arms = draw(names)
    weights = draw(st.lists(st.integers(0, 100), min_size=len(arms), max_size=len(arms)))
    if sum(weights) == 0:
        weights[draw(st.integers(0, len(arms) - 1))] = 1
    return Router.build("exp", list(zip(arms, weights, strict=True)))


@given(routers(), st.floats(0.0, 1.0, exclude_max=True))
def test_a_point_lands_in_the_bucket_of_its_cumulative_weight(r: Router, u: float) -> None:
    arm = r.pick(u)
    i = r.arms.index(arm)
    total = sum(r.weights)
    lower = sum(r.weights[:i]) / total
    upper = sum(r.weights[: i + 1]) / total
    assert r.weights[i] > 0
    assert lower - 1e-12 <= u < upper + 1e-12


@given(routers(), st.text(max_size=30))
def test_zero_weight_arms_are_never_chosen_and_keys_are_deterministic(r: Router, key: str) -> None:
    choice = r.choose(key, 0.0)
    assert r.weights[r.arms.index(choice.arm)] > 0
    assert choice.assignment == "hash" and choice.propensity == r.share(choice.arm)
    assert choice == r.choose(key, 0.999) == Router.build(
        "exp", list(zip(r.arms, r.weights, strict=True))).choose(key, 0.5)


@given(routers(), st.text(max_size=30), st.integers(0, 50))
def test_sticky_when_the_arm_keeps_its_bucket(r: Router, key: str, extra: int) -> None:
    """Within one version, moving weight only between arms after the chosen one keeps the
    chosen arm's bucket edges when the total is unchanged, so the same key keeps its arm."""
    arm = r.choose(key, 0.0).arm
    i = r.arms.index(arm)
    later = list(range(i + 1, len(r.arms)))
    weights = list(r.weights)
    if len(later) >= 2 and weights[later[0]] >= 1:
        move = min(extra, weights[later[0]])
        weights[later[0]] -= move
        weights[later[1]] += move
    r2 = r.with_weights(list(zip(r.arms, weights, strict=True)))
    assert r2.choose(key, 0.0).arm == arm


def test_the_hash_is_salted_with_the_experiment_and_its_version() -> None:
    """A new version (or another experiment) draws a fresh, independent assignment."""
    keys = [f"IBB:{i}" for i in range(4000)]

    def arms(experiment: str, version: int) -> list[str]:
        r = Router.build(experiment, [("a", 50), ("b", 50)], version=version)
        return [r.choose(k, 0.0).arm for k in keys]

    v1, v2, other = arms("exp", 1), arms("exp", 2), arms("other", 1)
    assert v1 == arms("exp", 1)
    for changed in (v2, other):
        agree = sum(x == y for x, y in zip(v1, changed, strict=True)) / len(keys)
        assert 0.46 < agree < 0.54  # independent halves agree half the time


@given(routers(), st.data())
def test_a_pinned_route_is_honoured_even_at_zero_weight(r: Router, data: st.DataObject) -> None:
    arm = data.draw(st.sampled_from(r.arms))
    version = data.draw(st.integers(1, 99))
    pinned = parse_route(f":{arm}_{version}:", r.arms)
    assert pinned == arm
    assert r.choose("any-key", 0.3, pinned) == Choice(arm, "pinned", 1.0)
    assert parse_route(arm, r.arms) == arm
    unpinned = r.choose(None, 0.3, "not-an-arm")
    assert (unpinned.arm, unpinned.assignment) == (r.pick(0.3), "random")


def test_parse_route_reads_seldon_multi_segment_headers() -> None:
    assert parse_route(":direction-ab.experiment:enhanced_7:", ["baseline", "enhanced"]) == \
        "enhanced"
    assert parse_route(":iris_1:", ["baseline"]) is None
    assert parse_route("", ["baseline"]) is None


@given(st.text(max_size=40))
def test_key_point_is_uniform_range(key: str) -> None:
    assert 0.0 <= key_point(key) < 1.0


def test_split_over_20k_keyed_decisions_is_70_30_and_passes_srm() -> None:
    r = Router.build("exp", [("baseline", 70), ("enhanced", 30)])
    n = 20_000
    counts = {"baseline": 0, "enhanced": 0}
    for i in range(n):
        counts[r.choose(f"client-{i}", 0.0).arm] += 1
    share = counts["baseline"] / n
    assert abs(share - 0.70) < 0.015
    assert chisquare([counts["baseline"], counts["enhanced"]], [0.7 * n, 0.3 * n]).pvalue > 0.001


def test_split_without_keys_follows_the_drawn_points() -> None:
    r = Router.build("exp", [("a", 70), ("b", 30)])
    rng = random.Random(42)
    n = 10_000
    hits = sum(r.choose(None, rng.random()).arm == "a" for _ in range(n))
    assert abs(hits / n - 0.70) < 0.015
    assert chisquare([hits, n - hits], [0.7 * n, 0.3 * n]).pvalue > 0.001


def test_mirror_percent_is_respected() -> None:
    r = Router.build("exp", [("a", 1)], mirror="m", mirror_percent=25)
    rng = random.Random(1)
    share = sum(r.mirrors(None, rng.random()) for _ in range(8000)) / 8000
    assert abs(share - 0.25) < 0.02
    assert not Router.build("exp", [("a", 1)]).mirrors(None, 0.0)
    keyed = [r.mirrors(f"k{i}", 0.99) for i in range(50)]
    assert keyed == [r.mirrors(f"k{i}", 0.0) for i in range(50)]


@pytest.mark.parametrize("candidates", [[], [("a", -1)], [("a", 0)], [("a", 1), ("a", 2)],
                                        [("", 1)]])
def test_invalid_experiments_are_bad_requests(candidates: list[tuple[str, int]]) -> None:
    with pytest.raises(BadRequestError):
        Router.build("exp", candidates)


@pytest.mark.parametrize("body", [None, [], {"candidates": "x"}, {"candidates": [{"name": 1}]},
                                  {"candidates": [{"name": "a", "weight": True}]},
                                  {"candidates": [], "extra": 1},
                                  {"candidates": [{"name": "a", "weight": 1, "x": 2}]}])
def test_admin_bodies_are_validated(body: object) -> None:
    with pytest.raises(BadRequestError):
        candidates_from_json(body)


@settings(max_examples=50)
@given(routers())
def test_shares_sum_to_one(r: Router) -> None:
    assert abs(sum(r.shares().values()) - 1.0) < 1e-9
    assert r.bounds[-1] == 1.0
