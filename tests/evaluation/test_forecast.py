"""Forecast tests: exact McNemar, Diebold-Mariano with the HLN factor, DeLong's AUC
variance, and the naive base-rate forecast."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t as student_t

from finmlops.evaluation import (
    auc,
    base_rate_forecast,
    delong_auc,
    diebold_mariano,
    log_loss_terms,
    mcnemar_exact,
)


def test_mcnemar_exact_worked_numbers():
    # 10 days only the model was right, 2 only the other: 2 P(X <= 2; 12, 1/2) = 158/4096
    model = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 8)
    other = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 8)
    res = mcnemar_exact(model, other)
    assert (res.wins, res.losses, res.n) == (10, 2, 50)
    assert res.p_value == pytest.approx(158 / 4096, rel=1e-12)
    assert res.p_better == pytest.approx(79 / 4096, rel=1e-12)  # P(X >= 10)
    same = mcnemar_exact(model, model)
    assert same.p_value == 1.0 and same.wins == same.losses == 0


def test_against_always_up_the_discordant_days_are_the_down_calls():
    y = np.array([1, 0, 0, 1, 1, 0, 1])
    pred = np.array([1, 0, 1, 0, 1, 0, 0])
    res = mcnemar_exact(pred == y, y == 1)
    down = pred == 0
    assert res.wins == int((down & (y == 0)).sum()) == 2
    assert res.losses == int((down & (y == 1)).sum()) == 2


def test_diebold_mariano_worked_numbers():
    d = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.0, 0.15, -0.05])
    res = diebold_mariano(d, np.zeros_like(d))
    n = d.size
    var = ((d - d.mean()) ** 2).mean()
    stat = d.mean() / math.sqrt(var / n) * math.sqrt((n + 1 - 2) / n)
    assert res.statistic == pytest.approx(stat, rel=1e-12)
    assert res.p_value == pytest.approx(2 * student_t.sf(abs(stat), n - 1), rel=1e-12)
    # h = 2: one autocovariance, and the HLN factor with h
    two = diebold_mariano(d, np.zeros_like(d), horizon=2)
    c = d - d.mean()
    lrv = (c @ c) / n + 2 * (c[1:] @ c[:-1]) / n
    stat2 = d.mean() / math.sqrt(lrv / n) * math.sqrt((n + 1 - 4 + 2 / n) / n)
    assert two.statistic == pytest.approx(stat2, rel=1e-12)


def test_diebold_mariano_holds_its_level_and_finds_a_better_forecast():
    rng = np.random.default_rng(4)
    rejected = sum(diebold_mariano(rng.gamma(2, 1, 300), rng.gamma(2, 1, 300)).p_value < 0.05
                   for _ in range(400))
    assert 0.02 <= rejected / 400 <= 0.085
    better = diebold_mariano(rng.gamma(2, 1, 2000) * 0.9, rng.gamma(2, 1, 2000))
    assert better.mean_difference < 0 and better.p_better < 0.01


def _brute_delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    pos, neg = s[y == 1], s[y == 0]
    psi = np.array([[1.0 if a > b else 0.5 if a == b else 0.0 for b in neg] for a in pos])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.sampled_from([0.1, 0.3, 0.5, 0.52, 0.9])),
                min_size=4, max_size=40))
def test_delong_variance_equals_the_brute_force_structural_components(pairs):
    y = np.array([p[0] for p in pairs], dtype=float)
    s = np.array([p[1] for p in pairs])
    if (y == 1).sum() < 2 or (y == 0).sum() < 2:
        return
    res = delong_auc(y, s)
    area, var = _brute_delong(y, s)
    assert res.auc == pytest.approx(area, abs=1e-12) == pytest.approx(auc(y, s))
    assert res.se == pytest.approx(math.sqrt(var), abs=1e-12)


def test_delong_interval_covers_the_true_auc():
    """Scores N(0.5, 1) for positives vs N(0, 1): true AUC = Phi(0.5 / sqrt 2) = 0.638."""
    true = 0.5 * math.erfc(-0.5 / math.sqrt(2) / math.sqrt(2))
    rng = np.random.default_rng(8)
    covered = 0
    for _ in range(200):
        y = (rng.random(400) < 0.5).astype(float)
        s = rng.normal(0, 1, 400) + 0.5 * y
        lo, hi = delong_auc(y, s).ci
        covered += lo <= true <= hi
    assert 0.9 <= covered / 200 <= 0.99


@settings(max_examples=40, deadline=None)
@given(y=st.lists(st.integers(0, 1), min_size=1, max_size=60), h=st.integers(1, 5),
       t=st.integers(0, 59))
def test_the_base_rate_uses_only_labels_already_known(y, h, t):
    labels = np.array(y, dtype=float)
    t = min(t, labels.size - 1)
    changed = labels.copy()
    changed[max(t - h + 1, 0):] = 1 - changed[max(t - h + 1, 0):]
    a, b = base_rate_forecast(labels, h), base_rate_forecast(changed, h)
    assert a[: t + 1].tolist() == b[: t + 1].tolist()
    known = labels[: max(t - h + 1, 0)]
    assert a[t] == pytest.approx((known.sum() + 1) / (known.size + 2))


def test_log_loss_terms_clip_like_the_metrics():
    terms = log_loss_terms([1, 0, 1], [1.0, 0.0, 0.5])
    assert terms[2] == pytest.approx(math.log(2))
    assert all(math.isfinite(x) for x in terms) and terms[0] < 1e-6


def test_combinations_of_ties_count_half():
    y = np.array([1, 1, 0, 0], dtype=float)
    s = np.array([0.5, 0.5, 0.5, 0.5])
    res = delong_auc(y, s)
    assert res.auc == 0.5 and res.se == 0.0
    assert list(itertools.islice(iter(res.ci or ()), 2)) == [0.5, 0.5]
