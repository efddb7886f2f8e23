"""Drift statistics on synthetic data: PSI/KS properties, the basis rule, the calibrated null
(valid for every input), the reference format and the live monitor."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import ks_2samp

from finmlops.errors import DataValidationError
from finmlops.monitoring import (
    DriftMonitor,
    DriftResult,
    build_reference,
    changes_of,
    compare,
    compare_windows,
    create_metrics,
    prepare_reference,
    proportions,
    psi,
    publish,
)
from finmlops.monitoring.reference import lag1_autocorrelation

props = st.integers(2, 20).flatmap(
    lambda k: st.tuples(
        arrays(np.float64, k, elements=st.floats(0, 1000, allow_nan=False)),
        arrays(np.float64, k, elements=st.floats(0, 1000, allow_nan=False)),
    )
).filter(lambda t: t[0].sum() > 0 and t[1].sum() > 0)


def ar1(rng: np.random.Generator, n: int, phi: float, width: int = 1) -> np.ndarray:
    """``width`` independent AR(1) series of ``n`` steps with unit innovations."""
    e = rng.normal(size=(n, width))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def windows(values: np.ndarray, n: int) -> np.ndarray:
    return values[np.arange(len(values) - n + 1)[:, None] + np.arange(n)[None, :]]


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


@settings(deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6)),
       st.integers(2, 20))
def test_proportions_sum_to_one(x: np.ndarray, bins: int) -> None:
    ref = build_reference(x[:, None], ["x"], bins=bins, lengths=())
    col = ref["features"]["x"]
    assert sum(col["expected"]) == pytest.approx(1.0)
    assert proportions(x, col["edges"]).sum() == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(reference=arrays(np.float64, st.integers(3, 300),
                        elements=st.integers(-20, 20).map(float)),
       live=arrays(np.float64, st.integers(1, 40), elements=st.integers(-25, 25).map(float)))
def test_reported_ks_is_the_exact_two_sample_statistic(reference: np.ndarray,
                                                       live: np.ndarray) -> None:
    """Integer values make ties on both sides, the hard case for an ECDF distance."""
    ref = build_reference(reference[:, None], ["x"], lengths=())
    col = ref["features"]["x"]
    tested = changes_of(live) if col["basis"] == "change" else live
    [row] = compare(ref, live[:, None])
    tested = tested[np.isfinite(tested)]
    expected = (ks_2samp(col["sample"], tested, method="asymp").statistic if tested.size
                else 0.0)
    assert row.ks == pytest.approx(expected, abs=1e-12)
    assert row.n == tested.size


def test_smoothed_levels_are_tested_on_changes_by_rule() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([ar1(rng, 3000, 0.97)[:, 0], rng.normal(size=3000), np.ones(3000)])
    ref = build_reference(x, ["smooth", "noise", "flat"], lengths=())
    basis = {n: c["basis"] for n, c in ref["features"].items()}
    assert basis == {"smooth": "change", "noise": "level", "flat": "level"}
    assert ref["features"]["smooth"]["ac1"] == pytest.approx(0.97, abs=0.02)
    assert ref["features"]["flat"]["ac1"] == 0.0
    # the tested distribution of a smoothed level is its changes' (the AR(1) innovations)
    assert ref["features"]["smooth"]["std"] == pytest.approx(1.0, abs=0.05)


def test_changes_and_autocorrelation_stay_inside_groups() -> None:
    x = np.array([1.0, 2.0, 4.0, 10.0, 11.0, 13.0])
    groups = ["A", "A", "A", "B", "B", "B"]
    got = changes_of(x, groups)
    np.testing.assert_array_equal(got, [np.nan, 1.0, 2.0, np.nan, 1.0, 2.0])
    # within groups consecutive values move together; across the jump they would not count
    assert lag1_autocorrelation(np.r_[np.arange(50.0), -np.arange(50.0)],
                                ["a"] * 50 + ["b"] * 50) > 0.99


def test_windows_of_the_null_never_cross_a_group() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 1))
    one = build_reference(x, ["x"], lengths=(20,))
    two = build_reference(x, ["x"], lengths=(20,), groups=["A"] * 250 + ["B"] * 150)
    assert one["null"]["windows"]["20"] == 400 - 20 + 1
    assert two["null"]["windows"]["20"] == (250 - 20 + 1) + (150 - 20 + 1)


@settings(max_examples=20, deadline=None)
@given(phi=st.floats(0.0, 0.98), seed=st.integers(0, 2**16),
       alpha=st.sampled_from([0.01, 0.05, 0.1]), n=st.sampled_from([10, 20, 30]))
def test_every_window_of_the_reference_alarms_at_most_at_the_level(
        phi: float, seed: int, alpha: float, n: int) -> None:
    """The calibration's guarantee, for any autocorrelation: over the reference's own windows
    each alarm fires on at most ``alpha`` of them, and every p-value is valid."""
    rng = np.random.default_rng(seed)
    x = ar1(rng, 700, phi, width=3)
    x[:, 2] = np.cumsum(x[:, 2]) / 10  # a near-unit-root level, tested on its changes
    p = 0.5 + 0.1 * ar1(rng, 700, 0.9)[:, 0] / 3
    ref = build_reference(x, ["a", "b", "c"], predictions=p, lengths=(n,))
    res = compare_windows(ref, windows(x, n)[1:], 0.0, alpha, predictions=windows(p, n)[1:],
                          changes=windows(changes_of(x), n)[1:])
    assert all(r.calibrated for r in res)
    agg = np.mean([r.aggregate is not None and r.aggregate.alarm for r in res])
    feature_alarm = np.mean([any(row.alarm for row in r[:3]) for r in res])
    prediction_alarm = np.mean([r[3].alarm for r in res])
    assert agg <= alpha and feature_alarm <= alpha and prediction_alarm <= alpha
    pv = np.array([[row.p_value for row in r] for r in res])
    for level in (0.02, 0.05, 0.1, 0.2, 0.5):
        assert (pv <= level).mean(axis=0).max() <= level


def test_the_textbook_ks_test_would_not_be_calibrated() -> None:
    """Why the null is empirical: on an autocorrelated series the iid KS p-value is below 0.01
    on most windows of the very data the reference was built from."""
    rng = np.random.default_rng(2)
    x = ar1(rng, 3000, 0.99)
    ref = build_reference(x, ["x"], lengths=(20,))
    sample = ref["features"]["x"]["sample"]
    w = windows(x[:, 0], 20)[::50]
    assert np.mean([ks_2samp(sample, v, method="asymp").pvalue < 0.01 for v in w]) > 0.5
    res = compare_windows(ref, windows(x, 20)[1:], changes=windows(changes_of(x), 20)[1:])
    assert np.mean([r.alarm for r in res]) <= 0.01


def test_a_shifted_window_alarms_and_the_same_distribution_does_not() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 2))
    ref = build_reference(x, ["a", "b"], lengths=(60,))
    quiet = compare(ref, rng.normal(size=(60, 2)))
    assert not quiet.alarm and quiet.calibrated and quiet.aggregate is not None
    assert quiet.aggregate.length == 60 and quiet.aggregate.alpha == 0.01
    live = rng.normal(size=(60, 2))
    live[:, 0] += 1.5
    res = compare(ref, live)
    assert res.drifted == ["a"]
    assert res[0].p_value < 0.001 and res[0].p_family <= 0.01 and res[0].psi > 0.2
    assert res[1].p_value > 0.01


def test_the_psi_floor_keeps_tiny_shifts_quiet() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 1))
    ref = build_reference(x, ["a"], lengths=(60,))
    live = rng.normal(loc=1.5, size=(60, 1))
    assert compare(ref, live).drifted == ["a"]
    assert compare(ref, live, psi_threshold=100).drifted == []


def test_windows_between_calibrated_lengths_use_the_shorter_table() -> None:
    rng = np.random.default_rng(5)
    ref = build_reference(rng.normal(size=(2000, 1)), ["a"], lengths=(10, 30))
    assert compare(ref, rng.normal(size=(29, 1))).aggregate.length == 10  # type: ignore[union-attr]
    assert compare(ref, rng.normal(size=(30, 1))).aggregate.length == 30  # type: ignore[union-attr]
    short = compare(ref, rng.normal(loc=5, size=(9, 1)))
    assert not short.calibrated and not short.alarm and short[0].p_value == 1.0


def test_reference_is_json_deterministic_and_skips_lengths_it_cannot_calibrate() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 3))
    p = rng.uniform(size=300)
    ref = build_reference(x, ["a", "b", "c"], bins=8, predictions=p, lengths=(20, 250))
    assert json.loads(json.dumps(ref)) == ref
    assert build_reference(x, ["a", "b", "c"], bins=8, predictions=p, lengths=(20, 250)) == ref
    assert ref["format"] == 2 and ref["null"]["lengths"] == [20]  # 51 windows of 250: too few
    col = ref["features"]["a"]
    assert len(col["edges"]) == 7 and len(col["expected"]) == 8
    assert len(col["sample"]) == 300 and col["sample"] == sorted(col["sample"])
    t = col["thresholds"]["20"]
    assert t == sorted(t) and len(t) == len(ref["null"]["probs"]["20"])
    family = ref["null"]["family"]["20"]
    assert family == sorted(family, reverse=True) and family[0] == 1.0
    assert ref["prediction"]["basis"] == "level" and ref["prediction"]["null"]["lengths"] == [20]


def test_format_1_references_are_reported_without_alarms(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    rng = np.random.default_rng(7)
    old = build_reference(rng.normal(size=(500, 1)), ["a"], lengths=())
    old = {k: v for k, v in old.items() if k != "null"} | {"format": 1}
    res = compare(old, rng.normal(loc=5, size=(60, 1)))
    assert not res.calibrated and not res.alarm and res[0].psi > 1
    with caplog.at_level(logging.WARNING, logger="finmlops.monitoring"):
        DriftMonitor(old, window=20)
    assert "retrain to calibrate" in caplog.text


def test_shape_errors_are_readable() -> None:
    ref = build_reference(np.zeros((10, 2)) + np.arange(10)[:, None], ["a", "b"], lengths=())
    with pytest.raises(DataValidationError, match=r"\[n, 2\]"):
        compare(ref, np.zeros((5, 3)))
    with pytest.raises(DataValidationError, match="changes must have"):
        compare(ref, np.zeros((5, 2)), changes=np.zeros((4, 2)))
    with pytest.raises(DataValidationError, match="feature names"):
        build_reference(np.zeros((5, 2)), ["a"])
    with pytest.raises(DataValidationError, match="finite"):
        build_reference(np.full((5, 1), np.nan), ["a"])
    with pytest.raises(DataValidationError, match="lacks features"):
        prepare_reference({"feature_names": ["a"], "features": {}})


def test_monitor_keeps_the_last_window_rows_and_equals_compare_on_the_tail() -> None:
    rng = np.random.default_rng(8)
    x = ar1(rng, 2000, 0.95, width=2)
    ref = build_reference(x, ["a", "b"], predictions=rng.uniform(size=2000), lengths=(30,))
    mon = DriftMonitor(ref, window=30)
    assert len(mon.snapshot()) == 0 and not mon.snapshot().alarm
    data = ar1(rng, 97, 0.95, width=2)
    for i in range(0, 97, 7):
        mon.observe(data[i:i + 7])
    assert mon.observed == 30
    # from [n, F] rows the change of each row is taken from the previous observed row
    assert mon.snapshot() == compare(ref, data[-30:], changes=changes_of(data)[-30:])


def test_monitor_takes_exact_changes_from_model_windows() -> None:
    """Each arm of an experiment sees only the days routed to it: the last two steps of each
    request's window give the true daily change, consecutive rows would not."""
    rng = np.random.default_rng(9)
    x = ar1(rng, 3000, 0.99, width=1)
    ref = build_reference(x, ["a"], lengths=(20,))
    live = ar1(rng, 80, 0.99, width=1)
    served = np.arange(1, 80, 2)[-20:]  # every other day
    exact = DriftMonitor(ref, window=20)
    exact.observe(np.stack([live[served - 1], live[served]], axis=1))  # [n, 2, F]
    truth = compare(ref, live[served], changes=(live[served] - live[served - 1]))
    assert exact.snapshot() == truth
    rows = DriftMonitor(ref, window=20)
    rows.observe(live[served])
    assert rows.snapshot()[0].ks != truth[0].ks


def test_monitor_alarms_after_a_window_of_shifted_rows() -> None:
    rng = np.random.default_rng(10)
    ref = build_reference(rng.normal(size=(3000, 2)), ["a", "b"],
                          predictions=rng.uniform(0.4, 0.6, size=3000), lengths=(50,))
    mon = DriftMonitor(ref, window=50)
    mon.observe(rng.normal(size=(80, 2)))
    mon.observe_predictions(rng.uniform(0.4, 0.6, size=50))
    assert not mon.snapshot().alarm
    for _ in range(10):
        mon.observe(rng.normal(loc=3.0, size=(5, 2)))
    res = mon.snapshot()
    assert res.drifted == ["a", "b"] and res.aggregate is not None and res.aggregate.alarm
    mon.observe_predictions(np.full(50, 0.99))
    assert mon.snapshot()[-1].feature == "prediction" and mon.snapshot()[-1].alarm


def test_monitor_rebins_from_sample_when_bins_differ() -> None:
    rng = np.random.default_rng(11)
    ref = build_reference(rng.normal(size=(4000, 1)), ["x"], bins=10, lengths=(100,))
    mon = DriftMonitor(ref, window=400, bins=5)
    mon.observe(rng.normal(size=(400, 1)))
    [row] = mon.snapshot()
    assert row.psi < 0.05 and not row.alarm
    live = np.zeros((50, 1)) + np.r_[[0.0] * 25, [1.0] * 25][:, None]
    assert compare(ref, live, bins=10) == compare(ref, live)
    assert compare(ref, live, bins=5)[0].psi != compare(ref, live)[0].psi


def test_monitor_is_thread_safe() -> None:
    ref = build_reference(np.random.default_rng(12).normal(size=(300, 1)), ["x"],
                          lengths=(20,))
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
    mon = DriftMonitor(build_reference(np.arange(10.0)[:, None], ["x"], lengths=()), window=5)
    with pytest.raises(DataValidationError):
        mon.observe(np.zeros((2, 3)))
    with pytest.raises(DataValidationError):
        mon.observe(np.zeros((2, 4, 3)))


def test_publish_sets_the_gauges() -> None:
    from prometheus_client import generate_latest

    rng = np.random.default_rng(13)
    ref = build_reference(rng.normal(size=(1000, 1)), ["ret_1d"], lengths=(100,))
    m = create_metrics()
    res = compare(ref, rng.normal(loc=4, size=(100, 1)))
    assert isinstance(res, DriftResult)
    publish(m, "baseline", res)
    text = generate_latest(m.registry).decode()
    assert 'finmlops_drift_alarm{feature="ret_1d",model="baseline"} 1.0' in text
    assert 'finmlops_drift_psi{feature="ret_1d",model="baseline"}' in text
    assert f'finmlops_drift_p_value{{feature="ret_1d",model="baseline"}} {res[0].p_value}' in text
    assert 'finmlops_drift_aggregate_alarm{model="baseline"} 1.0' in text
    assert 'finmlops_drift_unusual_features{model="baseline"} 1.0' in text
    assert 'finmlops_drift_unusual_threshold{model="baseline"} 1.0' in text
    publish(m, "baseline", compare(ref, rng.normal(size=(100, 1))))
    text = generate_latest(m.registry).decode()
    assert 'finmlops_drift_aggregate_alarm{model="baseline"} 0.0' in text
