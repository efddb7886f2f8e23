"""Classification metrics: Wilson CI, rank AUC with ties, log-loss/Brier, naive baselines."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlops.errors import DataValidationError
from finmlops.evaluation import (
    auc,
    baseline_metrics,
    classification_metrics,
    naive_probabilities,
    wilson_interval,
)


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


@given(n=st.integers(1, 10_000), frac=st.floats(0, 1))
def test_wilson_interval_contains_the_estimate(n: int, frac: float) -> None:
    k = round(n * frac)
    low, high = wilson_interval(k, n)
    assert 0 <= low <= k / n + 1e-12 and k / n - 1e-12 <= high <= 1


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 1), st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])),
                min_size=2, max_size=40))
def test_auc_equals_the_pairwise_probability_with_ties_half(pairs: list[tuple[int, float]]) -> None:
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs])
    pos, neg = s[y == 1], s[y == 0]
    if not pos.size or not neg.size:
        assert math.isnan(auc(y, s))
        return
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0
                     for a, b in itertools.product(pos, neg)])
    assert auc(y, s) == pytest.approx(brute)


def test_metrics_of_perfect_and_inverted_forecasts() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    good = classification_metrics(y, np.where(y == 1, 0.9, 0.1))
    assert good["accuracy"] == 1.0 and good["auc"] == 1.0 and good["balanced_accuracy"] == 1.0
    assert good["log_loss"] == pytest.approx(-math.log(0.9))
    assert good["brier"] == pytest.approx(0.01)
    assert good["n"] == 8 and good["accuracy_ci_low"] < 1.0
    bad = classification_metrics(y, np.where(y == 1, 0.1, 0.9))
    assert bad["accuracy"] == 0.0 and bad["auc"] == 0.0


def test_balanced_accuracy_punishes_always_up_on_imbalanced_labels() -> None:
    y = np.array([1] * 90 + [0] * 10)
    m = classification_metrics(y, np.ones(100))
    assert m["accuracy"] == 0.9 and m["balanced_accuracy"] == 0.5
    assert math.isfinite(m["log_loss"])  # 0/1 probabilities are clipped
    assert m["positive_rate"] == 1.0


def test_naive_baselines() -> None:
    y = np.array([1, 0, 1, 1])
    prev = np.array([0.01, 0.02, -0.01, 0.0])
    assert naive_probabilities(prev)["yesterday"].tolist() == [1, 1, 0, 0]
    b = baseline_metrics(y, prev)
    assert b["always_up"]["accuracy"] == 0.75
    assert b["yesterday"]["accuracy"] == 0.25


def test_invalid_inputs_are_readable_errors() -> None:
    with pytest.raises(DataValidationError, match="0 or 1"):
        classification_metrics([2, 0], [0.5, 0.5])
    with pytest.raises(DataValidationError, match="within"):
        classification_metrics([1, 0], [1.5, 0.5])
    with pytest.raises(DataValidationError, match="differ"):
        classification_metrics([1, 0], [0.5])
    assert classification_metrics([], [])["n"] == 0
