"""The feature matrix and labels of a universe of target tickers, pooled into one long frame.

Features at day t use bars up to t only; the label is the direction of the forward
``horizon``-day return, which uses t+1..t+h only. Tickers are computed together (grouped), not
in a Python loop, so a 500-ticker universe takes seconds.

Every ticker is first aligned to the master calendar of the target and context tickers
(:mod:`finmlops.features.calendar`): a day one of them lacks is a gap, reported by
:func:`feature_matrix` (which ticker, which days, how many target rows it cost), and each row
carries its calendar ``session`` so sequence windows are never formed across a missing row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from finmlops.errors import DataValidationError
from finmlops.features import indicators as ind
from finmlops.features.calendar import SESSION, align, find_gaps, master_calendar

FeatureSet = Literal["core", "full"]

CORE_FEATURES: tuple[str, ...] = ("ret_1", "ret_5", "ret_20", "vol_20", "rsi_14")
"""The baseline's few features: momentum at three horizons, volatility and RSI."""

OWN_FEATURES: tuple[str, ...] = (
    "ret_1", "ret_5", "ret_10", "ret_20", "vol_5", "vol_20", "rsi_14", "macd", "macd_hist",
    "bb_pct_b", "volume_z_20", "hl_range",
)
CONTEXT_FEATURES: tuple[str, ...] = (
    "{c}_ret_1", "{c}_ret_5", "{c}_ret_20", "{c}_vol_20",
    "rel_{c}_ret_1", "rel_{c}_ret_5", "rel_{c}_ret_20", "beta_60_{c}", "corr_60_{c}",
)
"""Market context per context ticker ``c`` (lower case): its returns and volatility, the
target's return relative to it, and the rolling 60-day beta and correlation."""

KEY_COLUMNS: tuple[str, ...] = ("date", "ticker", SESSION)
LABEL_COLUMNS: tuple[str, ...] = ("forward_return", "label")
BAR_COLUMNS: tuple[str, ...] = ("ticker", "date", "high", "low", "close", "adj_close", "volume")


def feature_names(kind: FeatureSet, context: Sequence[str] = ()) -> list[str]:
    """The ordered feature list of a feature set (``full`` depends on the context tickers)."""
    if kind == "core":
        return list(CORE_FEATURES)
    names = list(OWN_FEATURES)
    for c in context:
        names.extend(f.format(c=c.lower()) for f in CONTEXT_FEATURES)
    return names


def _sorted_bars(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars lack columns: {', '.join(missing)}")
    out = bars.loc[:, list(BAR_COLUMNS)].copy()
    out["date"] = pd.to_datetime(out["date"])
    out["ticker"] = out["ticker"].astype(str)
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def own_features(bars: pd.DataFrame, calendar: np.ndarray | None = None) -> pd.DataFrame:
    """Each ticker's own indicators (``OWN_FEATURES``) plus ``date, ticker, session,
    adj_close``, one row per day of ``calendar`` (default: the master calendar of ``bars``)
    within the ticker's span; gap days are rows of missing values."""
    b = _sorted_bars(bars)
    b = align(b, master_calendar(b["date"]) if calendar is None else calendar)
    g = ind.Grouped(b["ticker"])
    price = b["adj_close"].astype("float64")
    out = pd.DataFrame({"date": b["date"], "ticker": b["ticker"], SESSION: b[SESSION],
                        "adj_close": price})
    for k in (1, 5, 10, 20):
        out[f"ret_{k}"] = ind.log_return(g, price, k)
    for w in (5, 20):
        out[f"vol_{w}"] = g.rolling_std(out["ret_1"], w)
    out["rsi_14"] = ind.rsi(g, price, 14)
    out["macd"], out["macd_hist"] = ind.macd(g, price)
    out["bb_pct_b"] = ind.bollinger_pct_b(g, price, 20)
    log_volume = pd.Series(np.log1p(b["volume"].to_numpy(dtype="float64").clip(min=0)),
                           index=b.index)  # NaN on gap days
    out["volume_z_20"] = ind.zscore(g, log_volume, 20)
    out["hl_range"] = (b["high"] - b["low"]) / b["close"]
    return out


@dataclass(frozen=True)
class FeatureMatrix:
    """:func:`feature_matrix`'s result: the frame and what the master calendar found."""

    frame: pd.DataFrame
    calendar_days: int
    """Days in the master calendar of the target and context tickers."""
    gaps: dict[str, list[dt.date]]
    """Per ticker with gaps: the calendar days within its span on which it has no bar."""
    dropped_rows: dict[str, int]
    """Per target ticker that lost any: days after its warm-up on which it has a bar but no
    complete feature row (a gap of its own or of a context ticker is in a lookback)."""

    def metadata(self) -> dict[str, Any]:
        """JSON-able calendar report (ISO dates), as stored beside the feature matrix."""
        return {"calendar_days": self.calendar_days,
                "gaps": {t: [d.isoformat() for d in days] for t, days in self.gaps.items()},
                "dropped_rows": dict(self.dropped_rows)}

    def warning(self) -> str | None:
        """One line naming the gaps and the rows they cost, or None without gaps."""
        return gap_warning(self.gaps, self.dropped_rows)


def gap_warning(gaps: dict[str, list[Any]], dropped_rows: dict[str, int],
                show: int = 3) -> str | None:
    """One line, e.g. ``warning: calendar gaps: SPY lacks 1 day (2010-03-10); 4 target rows
    dropped (IBB 4)``; at most ``show`` tickers and days are named. None without gaps."""
    if not gaps and not dropped_rows:
        return None

    def listed(items: list[str], total: int) -> str:
        return ", ".join(items[:show]) + (f", +{total - show} more" if total > show else "")

    parts = []
    for ticker, days in list(gaps.items())[:show]:
        n = len(days)
        parts.append(f"{ticker} lacks {n} day{'s' * (n != 1)} "
                     f"({listed([str(d) for d in days], n)})")
    if len(gaps) > show:
        parts.append(f"{len(gaps) - show} more tickers have gaps")
    lost = sum(dropped_rows.values())
    if lost:
        per = [f"{t} {n}" for t, n in dropped_rows.items()]
        parts.append(f"{lost} target row{'s' * (lost != 1)} dropped "
                     f"({listed(per, len(per))})")
    return "warning: calendar gaps: " + "; ".join(parts)


def feature_matrix(bars: pd.DataFrame, target: Sequence[str], context: Sequence[str] = (),
                   horizon: int = 1) -> FeatureMatrix:
    """Features and labels of every ``target`` ticker on the master calendar, with its report.

    Frame columns: ``date, ticker, session``, :func:`feature_names` ``("full", context)``,
    ``forward_return`` (simple return from t to t+horizon calendar days) and ``label`` (1.0 if
    it is > 0; NaN when the future is unknown: the last ``horizon`` days, or a gap at
    t+horizon). Rows lacking any feature (warm-up, gaps in a lookback) are dropped.
    """
    if horizon < 1:
        raise DataValidationError("horizon must be at least 1")
    present = set(bars["ticker"].astype(str).unique())
    wanted = list(dict.fromkeys([*target, *context]))
    absent = [t for t in wanted if t not in present]
    if absent:
        raise DataValidationError(f"bars have no rows for tickers: {', '.join(absent)}")
    used = _sorted_bars(bars[bars["ticker"].isin(wanted)])
    calendar = master_calendar(used["date"])
    own = own_features(used, calendar)
    frame = own[own["ticker"].isin(list(target))].reset_index(drop=True)
    g = ind.Grouped(frame["ticker"])
    for c in context:
        lc = c.lower()
        ctx = own.loc[own["ticker"] == c, [SESSION, "ret_1", "ret_5", "ret_20", "vol_20"]]
        ctx = ctx.rename(columns={k: f"{lc}_{k}" for k in ("ret_1", "ret_5", "ret_20", "vol_20")})
        frame = frame.merge(ctx, on=SESSION, how="left", validate="many_to_one")
        for k in (1, 5, 20):
            frame[f"rel_{lc}_ret_{k}"] = frame[f"ret_{k}"] - frame[f"{lc}_ret_{k}"]
        frame[f"beta_60_{lc}"], frame[f"corr_60_{lc}"] = ind.rolling_beta_corr(
            g, frame["ret_1"], frame[f"{lc}_ret_1"], 60)
    price = frame["adj_close"]
    forward = g.shift(price, -horizon) / price - 1.0
    names = feature_names("full", context)
    out = frame.loc[:, [*KEY_COLUMNS, *names]]
    out["forward_return"] = forward
    out["label"] = (forward > 0).astype("float64").where(forward.notna())
    valid = np.isfinite(out[names].to_numpy(dtype="float64")).all(axis=1)
    # Lost rows: a bar but no complete feature row, after the ticker's first complete one.
    after_warm_up = pd.Series(valid).groupby(g.codes.to_numpy()).cummax().to_numpy()
    lost = after_warm_up & ~valid & price.notna().to_numpy()
    dropped = pd.Series(frame["ticker"].to_numpy()[lost]).value_counts(sort=False)
    result: pd.DataFrame = out.loc[valid].reset_index(drop=True)
    return FeatureMatrix(
        frame=result, calendar_days=int(calendar.size), gaps=find_gaps(used, calendar),
        dropped_rows={str(t): int(n) for t, n in sorted(dropped.items())},
    )


def build_features(bars: pd.DataFrame, target: Sequence[str], context: Sequence[str] = (),
                   horizon: int = 1) -> pd.DataFrame:
    """The frame of :func:`feature_matrix` (sorted by ``ticker, date``), without its report."""
    return feature_matrix(bars, target, context, horizon).frame


def training_mask(frame: pd.DataFrame, dead_band: float = 0.0) -> np.ndarray:
    """Rows usable for TRAINING: a known label and |forward return| >= ``dead_band``.

    Evaluation keeps every row with a known label; the dead band only removes ambiguous
    near-zero days from what the model learns from.
    """
    fwd = frame["forward_return"].to_numpy(dtype="float64")
    known = np.isfinite(fwd)
    mask: np.ndarray = known & (np.abs(np.where(known, fwd, 0.0)) >= dead_band)
    return mask
