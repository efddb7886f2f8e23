"""The bar schema and its checks: pure, vectorised, and exhaustive.

:func:`validate_bars` collects *every* violation (row, ticker, date, rule) before raising one
:class:`DataValidationError`, so a user fixes a file in one pass instead of one error at a time.
A frame's index labels its rows in the source (the line number for files); violations name it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finmlops.errors import DataValidationError

BAR_COLUMNS: tuple[str, ...] = (
    "ticker", "date", "open", "high", "low", "close", "adj_close", "volume",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
TICKER_PATTERN = r"[A-Z0-9.\-^=]{1,20}"
"""Tickers name files in the store, so they are restricted to a safe alphabet."""
MAX_LISTED = 10
"""How many violations the error message spells out (all are on ``.violations``)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule on one row of the source."""

    row: int | str
    ticker: str
    date: str
    rule: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.ticker or '?'} {self.date or '?'}): {self.rule}"


def empty_bars() -> pd.DataFrame:
    """A frame with the bar columns and dtypes and no rows."""
    return canonical(pd.DataFrame({c: [] for c in BAR_COLUMNS}))


def canonical(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars with the contract's dtypes, sorted by ticker and date, on a fresh index.

    Assumes the bars are valid (see :func:`validate_bars`); only casts and orders them.
    """
    out = pd.DataFrame({
        "ticker": _tickers(bars["ticker"]).to_numpy(dtype=object),
        "date": _as_dates(bars["date"]).to_numpy(dtype="datetime64[ns]"),
        **{c: pd.to_numeric(bars[c]).to_numpy(dtype="float64") for c in PRICE_COLUMNS},
        "volume": pd.to_numeric(bars["volume"]).to_numpy(dtype="int64"),
    })
    out["ticker"] = out["ticker"].astype(str)
    return out.sort_values(["ticker", "date"], kind="mergesort").reset_index(drop=True)


def find_violations(bars: pd.DataFrame) -> list[Violation]:
    """Every rule broken by ``bars``, in source-row order."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        return [Violation("-", "", "", f"missing column(s): {', '.join(missing)}")]
    n = len(bars)
    if n == 0:
        return []
    rows = bars.index.to_numpy()
    raw_ticker = bars["ticker"]
    ticker = _tickers(raw_ticker).to_numpy(dtype=object)
    dates = _as_dates(bars["date"])
    date_text = np.where(dates.isna(), "", dates.dt.strftime("%Y-%m-%d").fillna(""))
    checks: list[tuple[np.ndarray, str]] = []

    no_ticker = (raw_ticker.isna() | (raw_ticker.astype(str).str.strip() == "")).to_numpy()
    checks.append((no_ticker, "ticker is missing"))
    odd = ~pd.Series(ticker, dtype=object).str.fullmatch(TICKER_PATTERN).to_numpy(dtype=bool)
    checks.append((odd & ~no_ticker, "ticker is not 1-20 of A-Z 0-9 . - ^ ="))
    checks.append((dates.isna().to_numpy(), "date is missing or not a YYYY-MM-DD date"))

    values: dict[str, np.ndarray] = {}
    for col in (*PRICE_COLUMNS, "volume"):
        raw = bars[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
        values[col] = num
        checks.append((raw.isna().to_numpy(), f"{col} is missing"))
        checks.append(((~raw.isna()).to_numpy() & np.isnan(num), f"{col} is not a number"))
        checks.append((np.isinf(num), f"{col} is infinite"))
    with np.errstate(invalid="ignore"):
        for col in PRICE_COLUMNS:
            checks.append((values[col] <= 0, f"{col} <= 0"))
        o, h, lo, c = values["open"], values["high"], values["low"], values["close"]
        checks += [
            (h < lo, "high < low"),
            (o < lo, "open < low"),
            (c < lo, "close < low"),
            (o > h, "open > high"),
            (c > h, "close > high"),
        ]
        vol = values["volume"]
        checks.append((vol < 0, "volume < 0"))
        checks.append((np.isfinite(vol) & (vol != np.floor(vol)), "volume is not a whole number"))

    # Order rules, per ticker in source order: no duplicate day, dates ascending.
    key = pd.DataFrame({"t": ticker, "d": dates.to_numpy()})
    valid_date = ~dates.isna().to_numpy()
    dup = key.duplicated(keep="first").to_numpy() & valid_date
    checks.append((dup, "duplicate (ticker, date)"))
    seen = key["d"].where(valid_date).groupby(key["t"], sort=False).ffill()
    prev = seen.groupby(key["t"], sort=False).shift(1)
    with np.errstate(invalid="ignore"):
        back = (key["d"] < prev).to_numpy() & valid_date
    checks.append((back, "date is before the previous row's date (not ascending)"))

    out: list[tuple[int, int, Violation]] = []
    for order, (mask, rule) in enumerate(checks):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            row = rows[i]
            label: int | str = int(row) if isinstance(row, (int, np.integer)) else str(row)
            out.append((int(i), order, Violation(label, str(ticker[i]), str(date_text[i]), rule)))
    out.sort(key=lambda t: (t[0], t[1]))
    return [v for _, _, v in out]


def validate_bars(bars: pd.DataFrame, source: str = "bars") -> pd.DataFrame:
    """The canonical bars, or one :class:`DataValidationError` listing every violation."""
    violations = find_violations(bars)
    if violations:
        raise DataValidationError(describe(violations, source),
                                  violations=[str(v) for v in violations])
    return canonical(bars)


def describe(violations: list[Violation], source: str) -> str:
    """One line: the count and the first :data:`MAX_LISTED` violations."""
    n = len(violations)
    shown = "; ".join(str(v) for v in violations[:MAX_LISTED])
    more = f"; ... and {n - MAX_LISTED} more" if n > MAX_LISTED else ""
    return f"{n} violation{'s' if n != 1 else ''} in {source}: {shown}{more}"


def _as_dates(col: pd.Series) -> pd.Series:
    """Dates as naive midnight timestamps; unparseable values become NaT."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        normalized: pd.Series = col.dt.normalize()
        return normalized
    return pd.to_datetime(col.astype(str).str.strip(), format="%Y-%m-%d", errors="coerce")


def _tickers(col: pd.Series) -> pd.Series:
    return col.astype(str).str.strip().str.upper()
