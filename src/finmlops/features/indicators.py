"""Per-ticker technical indicators over a long frame sorted by ``ticker, date``.

Every function is causal: the value at row t depends on rows <= t of the same ticker only.
Shifts run over the whole column and mask the rows that would reach into the previous ticker;
rolling and exponential windows use pandas' grouped kernels (one pass over all tickers, each
window restarted at its ticker's first row, so a ticker priced in thousands does not disturb
the rounding of the next one).

Rows are days of the master calendar (:mod:`finmlops.features.calendar`), so a ticker's gap day
is a row of missing values. A return whose start or end day is missing is missing; a rolling
statistic is computed once its window lies wholly after the input's warm-up, from the values
present, provided at most a tenth of the window is missing (:func:`min_present`): one missing
day costs a 60-day beta nothing, instead of sixty rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def min_present(window: int) -> int:
    """Values a rolling window needs: all but a tenth (5 of 5, 18 of 20, 54 of 60)."""
    return max(1, window - window // 10)


class Grouped:
    """Ticker codes of a long frame and each row's position within its ticker."""

    def __init__(self, tickers: pd.Series) -> None:
        codes, _ = pd.factorize(tickers, sort=False)
        self.codes = pd.Series(codes, index=tickers.index)
        self.position = self.codes.groupby(self.codes).cumcount().to_numpy()

    def mask(self, values: pd.Series, lookback: int) -> pd.Series:
        """NaN where fewer than ``lookback`` earlier rows of the same ticker exist."""
        return values.where(self.position >= lookback)

    def shift(self, values: pd.Series, periods: int) -> pd.Series:
        """``values`` ``periods`` rows earlier (positive) or later (negative) within the ticker."""
        shifted = values.shift(periods)
        if periods >= 0:
            return self.mask(shifted, periods)
        sizes = np.bincount(self.codes.to_numpy())
        remaining = sizes[self.codes.to_numpy()] - 1 - self.position
        return shifted.where(remaining >= -periods)

    def _back(self, out: pd.Series, like: pd.Series) -> pd.Series:
        return pd.Series(out.to_numpy(), index=out.index.get_level_values(-1)).reindex(like.index)

    def warmed_up(self, values: pd.Series, window: int) -> npt.NDArray[np.bool_]:
        """True where the ``window`` rows ending here all lie at or after the first row at which
        ``values`` (of the same ticker) is present: the warm-up, whatever gaps follow it."""
        started = values.notna().groupby(self.codes, sort=False).cummax().astype("float64")
        out: npt.NDArray[np.bool_] = self.shift(started, window - 1).to_numpy() == 1.0
        return out

    def _rolling(self, values: pd.Series, window: int, how: str) -> pd.Series:
        rolling = values.groupby(self.codes, sort=False).rolling(
            window, min_periods=min_present(window))
        out = rolling.mean() if how == "mean" else rolling.std()
        return self._back(out, values).where(self.warmed_up(values, window))

    def rolling_mean(self, values: pd.Series, window: int) -> pd.Series:
        return self._rolling(values, window, "mean")

    def rolling_std(self, values: pd.Series, window: int) -> pd.Series:
        return self._rolling(values, window, "std")

    def ewm_mean(self, values: pd.Series, *, span: float | None = None,
                 alpha: float | None = None, min_periods: int = 1) -> pd.Series:
        out = (values.groupby(self.codes, sort=False)
               .ewm(span=span, alpha=alpha, adjust=False, min_periods=min_periods).mean())
        return self._back(out, values)


def log_return(g: Grouped, price: pd.Series, periods: int) -> pd.Series:
    """log(price_t / price_{t-periods})."""
    return pd.Series(np.log(price.to_numpy() / g.shift(price, periods).to_numpy()),
                     index=price.index)


def rsi(g: Grouped, price: pd.Series, window: int = 14) -> pd.Series:
    """Wilder's relative strength index scaled to [0, 1]."""
    delta = price - g.shift(price, 1)
    up = g.ewm_mean(delta.clip(lower=0), alpha=1 / window, min_periods=window)
    down = g.ewm_mean((-delta).clip(lower=0), alpha=1 / window, min_periods=window)
    total = up + down
    return (up / total.where(total > 0)).fillna(0.5).where(up.notna() & down.notna())


def macd(g: Grouped, price: pd.Series, fast: int = 12, slow: int = 26,
         signal: int = 9) -> tuple[pd.Series, pd.Series]:
    """MACD line and histogram, both divided by the price so tickers are comparable."""
    line = (g.ewm_mean(price, span=fast, min_periods=slow)
            - g.ewm_mean(price, span=slow, min_periods=slow)) / price
    sig = g.ewm_mean(line, span=signal, min_periods=signal)
    return line, line - sig


def bollinger_pct_b(g: Grouped, price: pd.Series, window: int = 20, k: float = 2.0) -> pd.Series:
    """Where the price sits in its Bollinger band: 0 at the lower, 1 at the upper band."""
    mean = g.rolling_mean(price, window)
    std = g.rolling_std(price, window)
    width = (2 * k * std).where(std > 0)
    return (price - (mean - k * std)) / width


def zscore(g: Grouped, values: pd.Series, window: int) -> pd.Series:
    mean = g.rolling_mean(values, window)
    std = g.rolling_std(values, window)
    return (values - mean) / std.where(std > 0)


def rolling_beta_corr(g: Grouped, x: pd.Series, m: pd.Series,
                      window: int) -> tuple[pd.Series, pd.Series]:
    """Rolling beta of ``x`` on ``m`` and their correlation, over the days both are present."""
    both = x.notna() & m.notna()
    x, m = x.where(both), m.where(both)
    mx, mm = g.rolling_mean(x, window), g.rolling_mean(m, window)
    cov = g.rolling_mean(x * m, window) - mx * mm
    var_m = g.rolling_mean(m * m, window) - mm * mm
    var_x = g.rolling_mean(x * x, window) - mx * mx
    beta = cov / var_m.where(var_m > 1e-12)
    corr: pd.Series = cov / np.sqrt((var_m * var_x).where((var_m > 1e-12) & (var_x > 1e-12)))
    return beta, corr.clip(-1.0, 1.0)
