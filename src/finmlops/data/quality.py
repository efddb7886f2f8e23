"""What a dataset version must satisfy before the daily job predicts from it, beyond the
schema every ingest enforces (columns, positive prices, low <= open/close <= high, one row
per ticker and day):

- **present**: every ticker the models need has bars;
- **fresh**: each ticker's newest bar lies at most ``max_age_days`` weekdays before the
  as-of date (weekends never count), and none after it;
- **aligned**: every ticker ends on the same day (otherwise one source answered late);
- **no recent gaps**: no ticker lacks a day another ticker has within the last
  ``recent_days`` sessions of the calendar (the day's feature windows need them); older gaps
  are reported, not failed (the features never bridge them);
- **plausible moves**: no one-day change of ``adj_close`` beyond ``max_abs_return`` (an
  unadjusted split or a bad print).

Pure: bars in, a :class:`QualityReport` out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import pandas as pd


class QualityJson(TypedDict):
    """:meth:`QualityReport.to_json`: the body of ``validation.json`` (dates in ISO form)."""

    as_of: str
    ok: bool
    newest: dict[str, str]
    problems: list[str]
    notes: list[str]


@dataclass(frozen=True)
class QualityReport:
    as_of: dt.date
    newest: dict[str, dt.date]
    problems: list[str] = field(default_factory=list)
    """Each one fails validation."""
    notes: list[str] = field(default_factory=list)
    """Reported, not failing."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> QualityJson:
        return {"as_of": self.as_of.isoformat(), "ok": self.ok,
                "newest": {t: d.isoformat() for t, d in sorted(self.newest.items())},
                "problems": list(self.problems), "notes": list(self.notes)}


def weekdays_between(newest: dt.date, as_of: dt.date) -> int:
    """Weekdays after ``newest`` up to and including ``as_of`` (0 when as_of <= newest)."""
    if as_of <= newest:
        return 0
    return int(np.busday_count(newest + dt.timedelta(days=1), as_of + dt.timedelta(days=1)))


def _days(values: pd.Series) -> list[dt.date]:
    return [d.date() for d in pd.to_datetime(values)]


def check_bars(bars: pd.DataFrame, tickers: Sequence[str], as_of: dt.date, *,
               max_age_days: int, recent_days: int, max_abs_return: float) -> QualityReport:
    """The checks of the module docstring over ``bars`` (the bar columns of
    docs/CONTRACTS.md) for ``tickers``."""
    problems: list[str] = []
    notes: list[str] = []
    frame = bars.loc[bars["ticker"].isin(list(tickers))].copy()
    frame["date"] = pd.to_datetime(frame["date"])
    frame = frame.sort_values(["ticker", "date"], kind="stable")
    present = sorted(set(frame["ticker"]))
    absent = [t for t in tickers if t not in present]
    if absent:
        problems.append(f"no bars for {', '.join(absent)}")
    groups = {str(t): g for t, g in frame.groupby("ticker", sort=True)}
    newest = {t: g["date"].max().date() for t, g in groups.items()}

    for t, last in sorted(newest.items()):
        if last > as_of:
            problems.append(f"{t}: newest bar {last} is after the as-of date {as_of} "
                            "(is the as-of date right?)")
            continue
        age = weekdays_between(last, as_of)
        if age > max_age_days:
            problems.append(f"{t}: newest bar {last} is {age} weekdays before {as_of} "
                            f"(at most {max_age_days}): stale data")
    if len(set(newest.values())) > 1:
        ends = ", ".join(f"{t} {d}" for t, d in sorted(newest.items()))
        problems.append(f"tickers end on different days ({ends}): a partial ingest")

    calendar = np.sort(frame["date"].unique())
    recent_from = calendar[-recent_days] if len(calendar) >= recent_days else (
        calendar[0] if len(calendar) else None)
    for t, g in groups.items():
        span = calendar[(calendar >= g["date"].min()) & (calendar <= g["date"].max())]
        missing = np.setdiff1d(span, g["date"].to_numpy())
        recent = missing[missing >= recent_from] if recent_from is not None else missing
        older = missing.size - recent.size
        if recent.size:
            days = ", ".join(str(pd.Timestamp(d).date()) for d in recent[:5])
            more = f" and {recent.size - 5} more" if recent.size > 5 else ""
            problems.append(f"{t}: {recent.size} calendar gap(s) in the last {recent_days} "
                            f"sessions ({days}{more}): days other tickers have")
        if older:
            notes.append(f"{t}: {older} older calendar gap(s) (reported by the features, "
                         "never bridged)")

        moves = g["adj_close"].astype("float64").pct_change().to_numpy()
        wild = np.flatnonzero(np.abs(np.nan_to_num(moves)) > max_abs_return)
        if wild.size:
            i = int(wild[0])
            day = _days(g["date"].iloc[[i]])[0]
            problems.append(f"{t}: adj_close moved {moves[i]:+.1%} on {day} (more than "
                            f"{max_abs_return:.0%}; {wild.size} such day(s)): an unadjusted "
                            "split or a bad print")
    return QualityReport(as_of=as_of, newest=newest, problems=problems, notes=notes)
