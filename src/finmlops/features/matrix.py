"""The feature matrix and labels of a universe of target tickers, pooled into one long frame.

Features at day t use bars up to t only; the label is the direction of the forward
``horizon``-day return, which uses t+1..t+h only. Tickers are computed together (grouped), not
in a Python loop, so a 500-ticker universe takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from finmlops.errors import DataValidationError
from finmlops.features import indicators as ind

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

KEY_COLUMNS: tuple[str, ...] = ("date", "ticker")
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


def own_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's own indicators (``OWN_FEATURES``) plus ``date, ticker, adj_close``."""
    b = _sorted_bars(bars)
    g = ind.Grouped(b["ticker"])
    price = b["adj_close"].astype("float64")
    out = pd.DataFrame({"date": b["date"], "ticker": b["ticker"], "adj_close": price})
    for k in (1, 5, 10, 20):
        out[f"ret_{k}"] = ind.log_return(g, price, k)
    for w in (5, 20):
        out[f"vol_{w}"] = g.rolling_std(out["ret_1"], w)
    out["rsi_14"] = ind.rsi(g, price, 14)
    out["macd"], out["macd_hist"] = ind.macd(g, price)
    out["bb_pct_b"] = ind.bollinger_pct_b(g, price, 20)
    log_volume = pd.Series(np.log1p(b["volume"].to_numpy(dtype="float64").clip(min=0)),
                           index=b.index)
    out["volume_z_20"] = ind.zscore(g, log_volume, 20)
    out["hl_range"] = (b["high"] - b["low"]) / b["close"]
    return out


def build_features(bars: pd.DataFrame, target: Sequence[str], context: Sequence[str] = (),
                   horizon: int = 1) -> pd.DataFrame:
    """Features and labels of every ``target`` ticker, sorted by ``ticker, date``.

    Columns: ``date, ticker``, :func:`feature_names` ``("full", context)``, ``forward_return``
    (simple return from t to t+horizon) and ``label`` (1.0 if it is > 0, NaN for the last
    ``horizon`` days, whose future is unknown). Rows still warming up any feature are dropped.
    """
    if horizon < 1:
        raise DataValidationError("horizon must be at least 1")
    present = set(bars["ticker"].astype(str).unique())
    wanted = list(dict.fromkeys([*target, *context]))
    absent = [t for t in wanted if t not in present]
    if absent:
        raise DataValidationError(f"bars have no rows for tickers: {', '.join(absent)}")
    own = own_features(bars[bars["ticker"].isin(wanted)])
    frame = own[own["ticker"].isin(list(target))].reset_index(drop=True)
    g = ind.Grouped(frame["ticker"])
    for c in context:
        lc = c.lower()
        ctx = own.loc[own["ticker"] == c, ["date", "ret_1", "ret_5", "ret_20", "vol_20"]]
        ctx = ctx.rename(columns={k: f"{lc}_{k}" for k in ("ret_1", "ret_5", "ret_20", "vol_20")})
        frame = frame.merge(ctx, on="date", how="left", validate="many_to_one")
        for k in (1, 5, 20):
            frame[f"rel_{lc}_ret_{k}"] = frame[f"ret_{k}"] - frame[f"{lc}_ret_{k}"]
        frame[f"beta_60_{lc}"], frame[f"corr_60_{lc}"] = ind.rolling_beta_corr(
            g, frame["ret_1"], frame[f"{lc}_ret_1"], 60)
    price = frame["adj_close"]
    forward = g.shift(price, -horizon) / price - 1.0
    names = feature_names("full", context)
    out = frame.loc[:, ["date", "ticker", *names]]
    out["forward_return"] = forward
    out["label"] = (forward > 0).astype("float64").where(forward.notna())
    values = out[names].to_numpy(dtype="float64")
    valid = np.isfinite(values).all(axis=1)
    result: pd.DataFrame = out.loc[valid].reset_index(drop=True)
    return result


def training_mask(frame: pd.DataFrame, dead_band: float = 0.0) -> np.ndarray:
    """Rows usable for TRAINING: a known label and |forward return| >= ``dead_band``.

    Evaluation keeps every row with a known label; the dead band only removes ambiguous
    near-zero days from what the model learns from.
    """
    fwd = frame["forward_return"].to_numpy(dtype="float64")
    known = np.isfinite(fwd)
    mask: np.ndarray = known & (np.abs(np.where(known, fwd, 0.0)) >= dead_band)
    return mask
