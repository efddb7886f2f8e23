"""Calibration of the drift alarms on the real IBB/SPY features of the baseline model.

Run: ``.venv/bin/python -m benchmarks drift``. Trains the baseline variant walk-forward (as
``finmlops train`` does, default settings) to get its exact reference rows and out-of-sample
predictions, builds the reference as the train stage does, and measures over *every* window of
the reference (at the service's window length, the README's 24-day COVID window and the old
60-day window):

- the false-alarm rate of each alarm (aggregate, any feature, each feature, the prediction)
  against the nominal level ``monitoring.ks_alpha``;
- the same windows under the previous rule (PSI > 0.2 and an iid KS p < 0.01 per series,
  levels, in-sample prediction reference): the baseline measured in the same run, on 300
  random windows per length;
- a held-out check (reference to 2009, windows 2010 to the reference's end), the share of
  days alarming after the cutoff, over the COVID crash, and the power on planted shifts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._common import write_results
from finmlops.config import Settings
from finmlops.features import build_features, feature_names
from finmlops.models.walkforward import max_window, prepare_samples, train_variant
from finmlops.monitoring import (
    DEFAULT_LENGTHS,
    DriftResult,
    build_reference,
    compare,
    compare_windows,
    ks,
    prepare_reference,
    proportions,
    psi,
)

COVID = (np.datetime64("2020-02-19"), np.datetime64("2020-03-23"))
COVID_PERIOD = (np.datetime64("2020-02-19"), np.datetime64("2020-05-15"))
OLD_SAMPLES = 300


def load(settings: Settings) -> tuple[Any, Any]:
    from finmlops.data import BundledSource, validate_bars

    f = settings.features
    bars = validate_bars(BundledSource().fetch([*f.target, *f.context], None, None))
    frame = build_features(bars, f.target, f.context, f.horizon)
    names = feature_names("full", f.context)
    samples = prepare_samples(frame, names, max_window(settings.train.variants))
    return samples, names


def windows(n_rows: int, n: int) -> np.ndarray:
    """Row indices ``[k, n]`` of every window of ``n`` consecutive rows."""
    return np.arange(n_rows - n + 1)[:, None] + np.arange(n)[None, :]


def rates(results: list[DriftResult]) -> dict[str, float]:
    features = [r for r in results[0] if r.feature != "prediction"]
    per = np.array([[row.alarm for row in res if row.feature != "prediction"]
                    for res in results], dtype=float)
    return {
        "aggregate": float(np.mean([bool(res.aggregate and res.aggregate.alarm)
                                    for res in results])),
        "any_feature": float(per.any(axis=1).mean()) if len(features) else 0.0,
        "max_feature": float(per.mean(axis=0).max()) if len(features) else 0.0,
        "mean_feature": float(per.mean()) if len(features) else 0.0,
        "any_alarm": float(np.mean([res.alarm for res in results])),
    }


def old_rule(levels: np.ndarray, samples: list[np.ndarray], edges: list[np.ndarray],
             expected: list[np.ndarray]) -> int:
    """Series alarming under the previous rule: PSI > 0.2 and iid KS p < 0.01, levels."""
    out = 0
    for j in range(levels.shape[1]):
        value = psi(expected[j], proportions(levels[:, j], edges[j], 0.5))
        _, p = ks(samples[j], levels[:, j])
        out += int(value > 0.2 and p < 0.01)
    return out


def level_reference(values: np.ndarray, bins: int) -> tuple[list[np.ndarray], ...]:
    """Per column: the previous reference's quantile sample, bin edges and shares (levels)."""
    samples, edges, expected = [], [], []
    for j in range(values.shape[1]):
        x = np.sort(values[:, j][np.isfinite(values[:, j])])
        samples.append(x[((np.arange(512) + 0.5) * x.size / 512).astype(int)])
        e = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))
        edges.append(e)
        expected.append(proportions(x, e))
    return samples, edges, expected


def main() -> int:
    settings = Settings()
    mon, train = settings.monitoring, settings.train
    alpha = mon.ks_alpha
    t0 = time.perf_counter()
    samples, names = load(settings)
    run = train_variant(samples, "baseline", train.variants["baseline"], train,
                        context=settings.features.context, horizon=settings.features.horizon)
    train_s = time.perf_counter() - t0
    cutoff = np.datetime64(train.cutoff)
    oos = run.oos[run.oos["date"] <= pd.Timestamp(train.cutoff)]
    oos_p = oos["probability"].to_numpy()
    ref_rows = np.asarray(run.reference_rows, dtype=np.float64)
    lengths = (*DEFAULT_LENGTHS, mon.drift_window_days)
    t0 = time.perf_counter()
    reference = build_reference(ref_rows, names, mon.bins, predictions=oos_p, lengths=lengths)
    build_s = time.perf_counter() - t0
    prep = prepare_reference(reference)

    # Every sample row: its level and its exact daily change (the window's last two steps).
    x_all = samples.x[:, -1, :].astype(np.float64)
    ch_all = (samples.x[:, -1, :] - samples.x[:, -2, :]).astype(np.float64)
    dates = samples.dates
    ref_idx = np.arange(len(ref_rows))  # one target ticker: the fit rows are the first days
    assert np.array_equal(x_all[ref_idx], ref_rows), "reference rows are the first rows"
    ref_changes = ch_all[ref_idx]
    old_s, old_e, old_x = level_reference(ref_rows, mon.bins)
    old_ps, old_pe, old_px = level_reference(run.reference_predictions[:, None], mon.bins)

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "variant": "baseline", "alpha": alpha, "psi_threshold": mon.psi_threshold,
        "service_window_days": mon.drift_window_days, "reference_rows": len(ref_rows),
        "reference_start": str(dates[ref_idx[0]])[:10],
        "reference_end": str(dates[ref_idx[-1]])[:10],
        "oos_predictions_before_cutoff": len(oos_p), "train_seconds": round(train_s, 1),
        "build_reference_seconds": round(build_s, 2),
        "reference_json_kb": round(len(json.dumps(reference)) / 1e3, 1),
        "basis": {n: reference["features"][n]["basis"] for n in names},
    }
    after = np.flatnonzero(dates > cutoff)
    live_p = _deployable_predictions(run.model, samples.x[after])
    for n in sorted({mon.drift_window_days, 24, 60}):
        idx = windows(len(ref_rows), n)
        new = compare_windows(prep, ref_rows[idx], mon.psi_threshold, alpha,
                              changes=ref_changes[idx])
        r = rates(new)
        pidx = windows(len(oos_p), n)
        fixed = np.repeat(idx[:1], len(pidx), axis=0)  # features held still: only the prediction
        pres = compare_windows(prep, ref_rows[fixed], mon.psi_threshold, alpha,
                               predictions=oos_p[pidx], changes=ref_changes[fixed])
        p_rate = float(np.mean([res[-1].alarm for res in pres]))
        pick = rng.choice(len(idx), size=min(OLD_SAMPLES, len(idx)), replace=False)
        old = [old_rule(ref_rows[idx[i]], old_s, old_e, old_x) for i in pick]
        old_pred = [old_rule(run.reference_predictions[idx[i]][:, None], old_ps, old_pe, old_px)
                    for i in pick]
        series = len(names) + 1
        tag = f"{n} days" + (" (service)" if n == mon.drift_window_days else "")
        base = {"window": tag, "windows": len(idx), "nominal": alpha}
        rows += [
            {**base, "check": "inside reference: aggregate alarm", "rate": r["aggregate"]},
            {**base, "check": "inside reference: any feature (family-wise)",
             "rate": r["any_feature"]},
            {**base, "check": "inside reference: each feature, worst / mean",
             "rate": f"{r['max_feature']:.4f} / {r['mean_feature']:.4f}"},
            {**base, "windows": len(pidx), "check": "inside OOS predictions: prediction alarm",
             "rate": p_rate},
            {**base, "windows": len(pick), "nominal": None,
             "check": f"previous rule: series alarming of {series}, median (mean)",
             "rate": f"{np.median(np.add(old, old_pred)):g} "
                     f"({np.mean(np.add(old, old_pred)):.1f})"},
            {**base, "windows": len(pick), "nominal": None,
             "check": "previous rule: windows with any alarm",
             "rate": float(np.mean(np.add(old, old_pred) > 0))},
        ]
        # after the cutoff: days alarming (the windows ending on each day)
        live_idx = windows(len(after), n)
        live = compare_windows(prep, x_all[after][live_idx], mon.psi_threshold, alpha,
                               predictions=live_p[live_idx], changes=ch_all[after][live_idx])
        end_day = dates[after][live_idx[:, -1]]
        covid = (end_day >= COVID_PERIOD[0]) & (end_day <= COVID_PERIOD[1])
        lr = rates(live)
        rows += [
            {**base, "windows": len(live), "nominal": None,
             "check": "after cutoff (2019-): days with aggregate alarm", "rate": lr["aggregate"]},
            {**base, "windows": len(live), "nominal": None,
             "check": "after cutoff: days with prediction alarm (vs OOS)",
             "rate": float(np.mean([res[-1].alarm for res in live]))},
            {**base, "windows": int(covid.sum()), "nominal": None,
             "check": "COVID 2020-02-19..05-15: days with aggregate alarm",
             "rate": float(np.mean([live[i].aggregate.alarm for i in np.flatnonzero(covid)]))},
            {**base, "windows": int((~covid).sum()), "nominal": None,
             "check": "after cutoff outside COVID: days with aggregate alarm",
             "rate": float(np.mean([live[i].aggregate.alarm for i in np.flatnonzero(~covid)]))},
        ]
        if n == mon.drift_window_days:
            rows += _held_out(ref_rows, ref_changes, dates[ref_idx], names, n, settings)
            rows += _planted(prep, ref_rows, ref_changes, names, n, settings, rng)

    covid_rows = np.flatnonzero((dates >= COVID[0]) & (dates <= COVID[1]))
    res = compare(prep, x_all[covid_rows], mon.psi_threshold, alpha,
                  predictions=_deployable_predictions(run.model, samples.x[covid_rows]),
                  changes=ch_all[covid_rows])
    agg = res.aggregate
    meta["covid_window"] = {
        "days": len(covid_rows), "unusual": agg.unusual if agg else None,
        "threshold": agg.threshold if agg else None,
        "aggregate_alarm": bool(agg and agg.alarm), "drifted": res.drifted,
        "previous_rule_series": old_rule(x_all[covid_rows], old_s, old_e, old_x) + old_rule(
            _deployable_predictions(run.model, samples.x[covid_rows])[:, None],
            old_ps, old_pe, old_px),
    }
    write_results("drift", rows, meta)
    print(f"COVID window (24 days): {meta['covid_window']}")
    return 0


def _deployable_predictions(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out: np.ndarray = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
                                ).double().numpy()
    return out


def _held_out(ref_rows: np.ndarray, ref_changes: np.ndarray, ref_dates: np.ndarray,
              names: list[str], n: int, settings: Settings) -> list[dict[str, Any]]:
    """Calibrate on the reference to 2009, measure on its windows from 2010 on."""
    mon = settings.monitoring
    split = int(np.searchsorted(ref_dates, np.datetime64("2010-01-01")))
    early = prepare_reference(build_reference(ref_rows[:split], names, mon.bins, lengths=(n,)))
    idx = windows(len(ref_rows) - split, n) + split
    r = rates(compare_windows(early, ref_rows[idx], mon.psi_threshold, mon.ks_alpha,
                              changes=ref_changes[idx]))
    base = {"window": f"{n} days (service)", "windows": len(idx), "nominal": mon.ks_alpha}
    return [
        {**base, "check": "held out (reference to 2009, windows 2010-): aggregate",
         "rate": r["aggregate"]},
        {**base, "check": "held out: any feature (family-wise)", "rate": r["any_feature"]},
    ]


def _planted(prep: Any, ref_rows: np.ndarray, ref_changes: np.ndarray, names: list[str],
             n: int, settings: Settings, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Share of reference windows in which a planted shift raises an alarm (any alarm)."""
    mon = settings.monitoring
    idx = windows(len(ref_rows), n)
    idx = idx[rng.choice(len(idx), size=min(1000, len(idx)), replace=False)]
    out = []
    spy = [j for j, name in enumerate(names) if "spy" in name]
    ret1, vol = names.index("ret_1"), names.index("vol_20")
    sd = float(np.nanstd(ref_rows[:, ret1]))
    plants = {
        "stale context (SPY features frozen)": (spy, "freeze"),
        "ret_1 shifted by +1 reference sd": ([ret1], "shift"),
        "vol_20 in percent (x100)": ([vol], "scale"),
    }
    for label, (cols, kind) in plants.items():
        x = ref_rows[idx].copy()
        c = ref_changes[idx].copy()
        if kind == "freeze":
            x[:, :, cols] = x[:, :1, cols]
            c[:, :, cols] = 0.0
        elif kind == "shift":
            x[:, :, cols] += sd
        else:
            x[:, :, cols] *= 100.0
            c[:, :, cols] *= 100.0
        res = compare_windows(prep, x, mon.psi_threshold, mon.ks_alpha, changes=c)
        out.append({"window": f"{n} days (service)", "windows": len(idx), "nominal": None,
                    "check": f"planted: {label}: windows with an alarm",
                    "rate": float(np.mean([r.alarm for r in res]))})
    return out


if __name__ == "__main__":
    sys.exit(main())
