"""Drift statistics: PSI/KS properties, the reference format and the live monitor."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from finmlops.errors import DataValidationError
from finmlops.monitoring import (
    DriftMonitor,
    build_reference,
    compare,
    create_metrics,
    ks,
    proportions,
    psi,
    publish,
)

props = st.integers(2, 20).flatmap(
    lambda k: st.tuples(
        arrays(np.float64, k, elements=st.floats(0, 1000, allow_nan=False)),
        arrays(np.float64, k, elements=st.floats(0, 1000, allow_nan=False)),
    )
).filter(lambda t: t[0].sum() > 0 and t[1].sum() > 0)


@settings(deadline=None)
@given(props)
def test_psi_is_non_negative_and_exactly_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    e, a = pair[0] / pair[0].sum(), pair[1] / pair[1].sum()
    value = psi(e, a)
    assert value >= 0.0
    assert value == psi(a, e)


@settings(deadline=None)
@given(arrays(np.float64, st.integers(2, 30), elements=st.floats(0.001, 1000)))
def test_psi_of_identical_distributions_is_zero(w: np.ndarray) -> None:
    p = w / w.sum()
    assert psi(p, p) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_the_shift() -> None:
    e = np.full(10, 0.1)
    a1 = np.array([0.05] * 5 + [0.15] * 5)
    a2 = np.array([0.01] * 5 + [0.19] * 5)
    assert 0 < psi(e, a1) < psi(e, a2)


def test_psi_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        psi([0.5, 0.5], [1.0])


@settings(max_examples=25, deadline=None)
@given(shift=st.floats(1.0, 5.0), seed=st.integers(0, 2**16))
def test_ks_and_compare_alarm_on_shifted_data(shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(2000, 1))
    ref = build_reference(train, ["x"])
    live = rng.normal(loc=shift, size=(200, 1))
    stat, p = ks(ref["features"]["x"]["sample"], live[:, 0])
    assert stat > 0.3 and p < 1e-6
    [row] = compare(ref, live, psi_threshold=0.2, ks_alpha=0.01)
    assert row.alarm and row.psi > 0.2


def test_same_distribution_does_not_alarm() -> None:
    rng = np.random.default_rng(0)
    ref = build_reference(rng.normal(size=(5000, 2)), ["a", "b"])
    rows = compare(ref, rng.normal(size=(500, 2)))
    assert [r.feature for r in rows] == ["a", "b"]
    assert not any(r.alarm for r in rows)
    assert all(r.psi < 0.05 for r in rows)


def test_reference_is_json_and_small() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    ref = build_reference(x, ["a", "b", "c"], bins=8, predictions=rng.uniform(size=3000))
    again = json.loads(json.dumps(ref))
    assert again == ref
    col = ref["features"]["a"]
    assert len(col["edges"]) == 7 and len(col["expected"]) == 8
    assert sum(col["expected"]) == pytest.approx(1.0)
    assert len(col["sample"]) == 512 and col["sample"] == sorted(col["sample"])
    assert col["n"] == 3000 and col["min"] <= col["p50"] <= col["max"]
    assert "prediction" in ref
    # deterministic: same data, same reference
    assert build_reference(x, ["a", "b", "c"], bins=8, predictions=rng.uniform(size=3000)
                           )["features"] == ref["features"]


def test_reference_of_a_discrete_feature_merges_tied_edges() -> None:
    x = np.array([[0.0]] * 900 + [[1.0]] * 100)
    ref = build_reference(x, ["flag"], bins=10)
    col = ref["features"]["flag"]
    assert col["edges"] == [0.0]
    assert col["expected"] == pytest.approx([0.9, 0.1])
    assert not compare(ref, x[::7])[0].alarm


@settings(deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6)),
       st.integers(2, 20))
def test_proportions_sum_to_one(x: np.ndarray, bins: int) -> None:
    ref = build_reference(x[:, None], ["x"], bins=bins)
    assert sum(ref["features"]["x"]["expected"]) == pytest.approx(1.0)
    assert proportions(x, ref["features"]["x"]["edges"]).sum() == pytest.approx(1.0)


def test_shape_errors_are_readable() -> None:
    ref = build_reference(np.zeros((10, 2)) + np.arange(10)[:, None], ["a", "b"])
    with pytest.raises(DataValidationError, match=r"\[n, 2\]"):
        compare(ref, np.zeros((5, 3)))
    with pytest.raises(DataValidationError, match="feature names"):
        build_reference(np.zeros((5, 2)), ["a"])
    with pytest.raises(DataValidationError, match="finite"):
        build_reference(np.full((5, 1), np.nan), ["a"])


def test_monitor_keeps_the_last_window_rows() -> None:
    rng = np.random.default_rng(2)
    ref = build_reference(rng.normal(size=(2000, 2)), ["a", "b"],
                          predictions=rng.uniform(size=2000))
    mon = DriftMonitor(ref, window=50, psi_threshold=0.2)
    assert mon.snapshot() == []
    mon.observe(rng.normal(size=(80, 2)))
    assert mon.observed == 50
    assert not any(r.alarm for r in mon.snapshot())
    # after a full window of shifted rows, every feature alarms
    for _ in range(10):
        mon.observe(rng.normal(loc=3.0, size=(5, 2)))
    rows = mon.snapshot()
    assert [r.feature for r in rows] == ["a", "b"]
    assert all(r.alarm for r in rows)
    mon.observe_predictions(np.full(50, 0.99))
    rows = mon.snapshot()
    assert rows[-1].feature == "prediction" and rows[-1].alarm


def test_monitor_window_equals_compare_on_the_tail() -> None:
    rng = np.random.default_rng(3)
    ref = build_reference(rng.normal(size=(1000, 1)), ["x"])
    mon = DriftMonitor(ref, window=30)
    data = rng.normal(loc=0.5, size=(97, 1))
    for i in range(0, 97, 7):
        mon.observe(data[i:i + 7])
    assert mon.snapshot() == compare(ref, data[-30:])


def test_monitor_rebins_from_sample_when_bins_differ() -> None:
    rng = np.random.default_rng(4)
    ref = build_reference(rng.normal(size=(4000, 1)), ["x"], bins=10)
    mon = DriftMonitor(ref, window=400, bins=5)
    mon.observe(rng.normal(size=(400, 1)))
    [row] = mon.snapshot()
    assert row.psi < 0.05 and not row.alarm


def test_monitor_is_thread_safe() -> None:
    ref = build_reference(np.arange(100.0)[:, None], ["x"])
    mon = DriftMonitor(ref, window=64)

    def work() -> None:
        for _ in range(200):
            mon.observe(np.ones((3, 1)))
            mon.snapshot()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mon.observed == 64


def test_monitor_rejects_wrong_width() -> None:
    mon = DriftMonitor(build_reference(np.arange(10.0)[:, None], ["x"]), window=5)
    with pytest.raises(DataValidationError):
        mon.observe(np.zeros((2, 3)))


def test_publish_sets_the_gauges() -> None:
    from prometheus_client import generate_latest

    rng = np.random.default_rng(5)
    ref = build_reference(rng.normal(size=(1000, 1)), ["ret_1d"])
    m = create_metrics()
    publish(m, "baseline", compare(ref, rng.normal(loc=4, size=(100, 1))))
    text = generate_latest(m.registry).decode()
    assert 'finmlops_drift_alarm{feature="ret_1d",model="baseline"} 1.0' in text
    assert 'finmlops_drift_psi{feature="ret_1d",model="baseline"}' in text


def test_same_bins_as_the_reference_use_its_stored_edges() -> None:
    x = np.array([[0.0]] * 900 + [[1.0]] * 100)  # tied edges: 2 bins stored for bins=10
    ref = build_reference(x, ["flag"], bins=10)
    live = np.array([[0.0]] * 50 + [[1.0]] * 50)
    assert compare(ref, live, bins=10) == compare(ref, live)
    assert compare(ref, live, bins=10)[0].psi > 0.5
