"""Cross-sectional features and labels of a universe: each day's values compared across tickers.

A cross-sectional feature of ticker i on day t is a function of the values of every ticker
on day t only (its centred percentile rank, or its z-score, among the tickers with a value
that day), so it inherits the causality of the per-ticker features: nothing after t enters.
Labels compare the next-day return with the rest of the universe on the same day: above
the universe's mean (market-neutral), above its sector's mean (sector-neutral), or its
centred rank (top half against bottom half; training may keep the extreme quantiles only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from finmlops.errors import DataValidationError
from finmlops.features.calendar import SESSION
from finmlops.features.matrix import CONTEXT_FEATURES, OWN_FEATURES, FeatureMatrix, feature_matrix

Method = Literal["rank", "zscore"]
LabelKind = Literal["market_neutral", "sector_neutral", "rank"]
UniverseFeatureSet = Literal["raw", "cs", "both"]

CS_PREFIX = "cs_"
ZSCORE_CLIP = 5.0
"""Cross-sectional z-scores are clipped to ±5 standard deviations (one extreme name per
day must not set the scale of a model's inputs)."""
RAW_TARGET = "raw_forward_return"
"""The universe frame keeps the plain forward return here; ``forward_return`` holds the
label's target (the neutralised return, or the centred rank)."""


def ranked_sources(context: Sequence[str]) -> list[str]:
    """The per-ticker features made cross-sectional: the own indicators and, per context
    ticker, the rolling beta and correlation to it."""
    out = list(OWN_FEATURES)
    for c in context:
        out += [f"beta_60_{c.lower()}", f"corr_60_{c.lower()}"]
    return out


def market_features(context: Sequence[str]) -> list[str]:
    """The context tickers' own returns and volatility: the same for every ticker on a day,
    so they stay raw (a rank of a constant says nothing)."""
    return [f.format(c=c.lower()) for c in context for f in CONTEXT_FEATURES
            if f.startswith("{c}_")]


def universe_feature_names(kind: UniverseFeatureSet, context: Sequence[str] = ()) -> list[str]:
    """The ordered input list of a universe variant's feature set."""
    from finmlops.features.matrix import feature_names

    raw = feature_names("full", context)
    cs = [CS_PREFIX + f for f in ranked_sources(context)]
    if kind == "raw":
        return raw
    if kind == "cs":
        return [*cs, *market_features(context)]
    return [*raw, *cs]


def all_universe_features(context: Sequence[str] = ()) -> list[str]:
    """Every column a universe frame carries: the shared input list of its exported models."""
    return universe_feature_names("both", context)


def _panel_codes(frame: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, int, np.ndarray, int]:
    """Row codes of the groups (days) and of the members within them (tickers)."""
    groups = frame[list(by)]
    if list(by) == ["date"] and SESSION in frame.columns:
        g_codes = frame[SESSION].to_numpy(dtype=np.int64)
        g_codes = g_codes - g_codes.min() if g_codes.size else g_codes
        n_groups = int(g_codes.max()) + 1 if g_codes.size else 0
    elif len(by) == 1:
        g_codes, g_uniques = pd.factorize(groups.iloc[:, 0], sort=True)
        n_groups = len(g_uniques)
    else:
        g_codes, g_uniques = pd.factorize(pd.MultiIndex.from_frame(groups), sort=True)
        n_groups = len(g_uniques)
    member = (frame["ticker"] if "ticker" in frame.columns else pd.Series(
        np.arange(len(frame)), index=frame.index))
    m_codes, m_uniques = pd.factorize(member, sort=False)
    return (np.asarray(g_codes, dtype=np.int64), n_groups,
            np.asarray(m_codes, dtype=np.int64), len(m_uniques))


def average_ranks(panel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks along the last axis with ties averaged (NaN excluded, rank NaN), and
    the count of values per row."""
    order = np.argsort(panel, axis=-1, kind="stable")  # NaN sort last
    s = np.take_along_axis(panel, order, axis=-1)
    n = panel.shape[-1]
    pos = np.broadcast_to(np.arange(n, dtype=np.float64), s.shape)
    new_run = np.ones(s.shape, dtype=bool)
    new_run[..., 1:] = s[..., 1:] != s[..., :-1]
    first = np.maximum.accumulate(np.where(new_run, pos, 0.0), axis=-1)
    end_run = np.ones(s.shape, dtype=bool)
    end_run[..., :-1] = new_run[..., 1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end_run, pos, n), axis=-1),
                                         axis=-1), axis=-1)
    avg = (first + last) / 2.0 + 1.0
    avg[np.isnan(s)] = np.nan
    ranks = np.empty_like(avg)
    np.put_along_axis(ranks, order, avg, axis=-1)
    count = np.count_nonzero(~np.isnan(panel), axis=-1)
    return ranks, count


def _transform(panel: np.ndarray, method: Method) -> np.ndarray:
    """One column's days x tickers panel, ranked or z-scored along each day."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "rank":
            ranks, count = average_ranks(panel)
            denom = (count - 1.0)[..., None]
            out = np.where(denom > 0, (ranks - 1.0) / np.where(denom > 0, denom, 1.0) - 0.5,
                           0.0)
        else:
            count = np.count_nonzero(~np.isnan(panel), axis=-1)
            mean = np.nansum(panel, axis=-1) / np.maximum(count, 1)
            centred = panel - mean[..., None]
            var = np.nansum(centred * centred, axis=-1) / np.maximum(count - 1, 1)
            std = np.sqrt(var)[..., None]
            out = np.where(std > 0, np.clip(centred / np.where(std > 0, std, 1.0),
                                             -ZSCORE_CLIP, ZSCORE_CLIP), 0.0)
    result: np.ndarray = np.where(np.isnan(panel), np.nan, out)
    return result


def cross_sectional(frame: pd.DataFrame, columns: Sequence[str], method: Method = "rank",
                    by: Sequence[str] = ("date",)) -> pd.DataFrame:
    """``cs_<column>`` for each of ``columns``: per group of ``by`` (a day by default), the
    centred percentile rank in [-0.5, 0.5] (ties averaged; a lone value is 0) or the z-score
    clipped to ±:data:`ZSCORE_CLIP` (0 where the day has no spread). NaN stays NaN and is
    not counted. Rows of one group must name distinct tickers (a panel of days x tickers)."""
    missing = [c for c in [*columns, *by] if c not in frame.columns]
    if missing:
        raise DataValidationError(f"frame lacks columns: {', '.join(missing)}")
    if method not in ("rank", "zscore"):
        raise DataValidationError(f"unknown cross-sectional method {method!r}")
    g, n_g, m, n_m = _panel_codes(frame, by)
    if np.unique(g * n_m + m).size != g.size:
        raise DataValidationError("a ticker appears twice in one cross-section")
    values = frame[list(columns)].to_numpy(dtype=np.float64)
    out = np.empty_like(values)

    def one(j: int) -> None:
        panel = np.full((n_g, n_m), np.nan)
        col = values[:, j]
        panel[g, m] = np.where(np.isfinite(col), col, np.nan)
        out[:, j] = _transform(panel, method)[g, m]

    # Sorting and the scans release the GIL: the columns share the machine's cores.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(columns), os.cpu_count() or 1, 4)) as pool:
        list(pool.map(one, range(len(columns))))
    result = pd.DataFrame(out, index=frame.index, columns=[CS_PREFIX + c for c in columns])
    return result


def neutral_target(forward: pd.Series, dates: pd.Series, kind: LabelKind,
                   sectors: pd.Series | None = None) -> pd.Series:
    """The label's target per row: the forward return less the mean of the day's universe
    (``market_neutral``) or of the day's sector (``sector_neutral``), or its centred rank
    among the day's tickers (``rank``). NaN where the forward return is unknown."""
    f = forward.astype("float64")
    if kind == "market_neutral":
        out: pd.Series = f - f.groupby(dates).transform("mean")
        return out
    if kind == "sector_neutral":
        if sectors is None:
            raise DataValidationError("a sector-neutral label needs the tickers' sectors")
        out = f - f.groupby([dates, sectors]).transform("mean")
        return out
    if kind == "rank":
        ranked = cross_sectional(pd.DataFrame({"f": f, "date": dates}), ["f"], "rank")
        return ranked[CS_PREFIX + "f"]
    raise DataValidationError(f"unknown label kind {kind!r}")


def universe_frame(bars: pd.DataFrame, tickers: Sequence[str], context: Sequence[str] = (),
                   *, horizon: int = 1, method: Method = "rank",
                   label: LabelKind = "market_neutral",
                   sectors: Mapping[str, str] | None = None) -> FeatureMatrix:
    """The feature matrix of every ticker (:func:`finmlops.features.feature_matrix`) with
    the cross-sectional columns of :func:`all_universe_features`, ``sector``,
    :data:`RAW_TARGET`, and ``forward_return``/``label`` replaced by the label's target and
    its sign (NaN where unknown); sorted by ``ticker, date``."""
    fm = feature_matrix(bars, list(tickers), list(context), horizon)
    frame = fm.frame
    sources = ranked_sources(context)
    cs = cross_sectional(frame, sources, method)
    lookup = dict(sectors or {})
    sector = pd.Series([lookup.get(t, "Unknown") for t in frame["ticker"].astype(str)],
                       index=frame.index, dtype=object)
    target = neutral_target(frame["forward_return"], frame["date"], label, sector)
    out = pd.concat([frame.drop(columns=["forward_return", "label"]), cs], axis=1)
    out["sector"] = sector.to_numpy()
    out[RAW_TARGET] = frame["forward_return"].to_numpy()
    out["forward_return"] = target.to_numpy()
    out["label"] = (target > 0).astype("float64").where(target.notna()).to_numpy()
    return FeatureMatrix(frame=out, calendar_days=fm.calendar_days, gaps=fm.gaps,
                         dropped_rows=fm.dropped_rows)
