"""A universe study: the universe into the store, cross-sectional features, pooled models
trained walk-forward, each model's out-of-sample scores turned into a ranked long/short book,
every book recorded in the trial ledger and deflated by every trial of the same universe.

The shell around pure parts: :mod:`finmlops.data.universe` (files), ``features`` (frame),
``models`` (training, export), ``evaluation`` (the book) and ``tracking`` (the ledger).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlops.config import Settings, UniverseSettings, UniverseVariantSettings
from finmlops.errors import ConfigError

Progress = Callable[[str], None]
STUDY = "universe"
RESULT_FORMAT = 1


def quiet(message: str) -> None:
    """The :data:`Progress` that reports nothing: the default when no caller listens."""
    return None


@dataclass
class Prepared:
    """Everything a variant needs, built once per study."""

    version: str
    tickers: list[str]
    context: list[str]
    sectors: dict[str, str]
    dropped: list[str]
    samples: Any
    """:class:`finmlops.models.walkforward.Samples` over every universe feature."""
    input_names: list[str]
    window: int
    panels: Mapping[str, pd.DataFrame]
    """Wide frames (dates x tickers): ``returns`` (under ``evaluation.execution``),
    ``volatility``, ``adv``, ``beta``; ``market`` is a one-column frame."""
    universe_key: str
    feature_seconds: float
    gaps: dict[str, Any]


def universe_key(universe: UniverseSettings, tickers: Sequence[str]) -> str:
    """The identity of a universe (its tickers, context and dates): trials of one universe
    deflate each other, not those of another."""
    text = json.dumps({"tickers": sorted(tickers), "context": universe.context,
                       "start": str(universe.start), "end": str(universe.end)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def input_window(universe: UniverseSettings) -> int:
    """``W``: the longest window (network) or lag count (trees) among the variants."""
    return max(v.network.window if v.kind == "neural" else v.gbm.lags
               for v in universe.variants.values())


def _panels(bars: pd.DataFrame, settings: Settings, context: Sequence[str]) -> dict[str, Any]:
    from finmlops.evaluation import execution_returns

    p = settings.universe.portfolio
    exe = execution_returns(bars, settings.evaluation.execution)
    returns = exe.pivot(index="date", columns="ticker", values="return")
    wide = bars.pivot(index="date", columns="ticker", values="adj_close")
    daily = wide / wide.shift(1) - 1.0
    value = bars.assign(v=bars["close"] * bars["volume"]).pivot(
        index="date", columns="ticker", values="v")
    market = daily[context[0]]
    mean_m = market.rolling(p.beta_window, min_periods=p.beta_window).mean()
    var_m = market.rolling(p.beta_window, min_periods=p.beta_window).var()
    mean_r = daily.rolling(p.beta_window, min_periods=p.beta_window).mean()
    mean_rm = daily.mul(market, axis=0).rolling(p.beta_window, min_periods=p.beta_window).mean()
    n = p.beta_window
    beta = (mean_rm - mean_r.mul(mean_m, axis=0)).mul(n / (n - 1)).div(var_m, axis=0)
    return {
        "returns": returns,
        "volatility": daily.rolling(p.vol_window, min_periods=p.vol_window).std(),
        "adv": value.rolling(p.adv_window, min_periods=p.adv_window).mean(),
        "beta": beta,
        "market": returns[[context[0]]],
    }


def prepare(settings: Settings, progress: Progress = quiet) -> Prepared:
    """Read the universe into the store, build its features, windows and panels."""
    from finmlops.data import read_bars
    from finmlops.data.universe import ingest_universe, read_sectors
    from finmlops.features import all_universe_features, universe_frame
    from finmlops.models.walkforward import prepare_samples

    u = settings.universe
    if not u.context:
        raise ConfigError("universe.context is empty: name the market ticker (e.g. SPY)")
    if not u.files:
        raise ConfigError("universe.files is empty: name the bar CSVs of the universe "
                          "(e.g. universe.files: [sp500.csv, SPY.csv])")
    progress("reading the universe's files")
    version, data = ingest_universe(settings)
    bars = read_bars(settings, version, [*data.tickers, *data.context])
    sectors = read_sectors(u.sectors_path, data.tickers)
    t0 = time.perf_counter()
    progress(f"features of {len(data.tickers)} tickers")
    fm = universe_frame(bars, data.tickers, data.context, method=u.cross_section,
                        label=u.label, sectors=sectors)
    seconds = time.perf_counter() - t0
    names = all_universe_features(data.context)
    window = input_window(u)
    samples = prepare_samples(fm.frame, names, window)
    return Prepared(version=version, tickers=data.tickers, context=data.context,
                    sectors=sectors, dropped=data.dropped, samples=samples, input_names=names,
                    window=window, panels=_panels(bars, settings, data.context),
                    universe_key=universe_key(u, data.tickers), feature_seconds=seconds,
                    gaps=fm.metadata())


@dataclass
class VariantOutcome:
    """One trained universe variant: out-of-sample scores and an exporter."""

    name: str
    kind: str
    oos: pd.DataFrame
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    seconds: float
    export: Callable[[Path], Path]
    trained_until: str | None


def _dead_band(universe: UniverseSettings) -> float:
    return 0.5 - universe.label_quantile if universe.label == "rank" else 0.0


def train_one(settings: Settings, prep: Prepared, name: str,
              variant: UniverseVariantSettings, progress: Progress = quiet) -> VariantOutcome:
    """Walk-forward one variant over the pooled universe."""
    from finmlops.config import TrainSettings
    from finmlops.features import universe_feature_names

    u = settings.universe
    names = universe_feature_names(variant.features, prep.context)
    seed = settings.train.seed
    if variant.kind == "gbm":
        from finmlops.models.gbm import export_gbm_onnx, train_gbm

        run = train_gbm(prep.samples, name, variant.gbm, names, seed=seed,
                        min_train_years=u.min_train_years, test_block_years=u.test_block_years,
                        embargo_days=u.embargo_days, cutoff=u.cutoff,
                        dead_band=_dead_band(u), progress=progress)

        def export_gbm(directory: Path) -> Path:
            return export_gbm_onnx(run.model, directory / "model.onnx", window=prep.window,
                                   n_features=len(prep.input_names), index=run.input_index,
                                   lags=run.lags)

        return VariantOutcome(name, "gbm", run.oos, run.metrics, run.baselines, run.seconds,
                              export_gbm, str(run.trained_until))
    from finmlops.models.walkforward import train_variant

    train = TrainSettings(variants={name: variant.network}, seed=seed,
                          min_train_years=u.min_train_years,
                          test_block_years=u.test_block_years, embargo_days=u.embargo_days,
                          validation_fraction=u.validation_fraction, cutoff=u.cutoff,
                          torch_threads=settings.train.torch_threads)
    nrun = train_variant(prep.samples, name, variant.network, train, context=prep.context,
                         dead_band=_dead_band(u), progress=progress, names=names)

    def export_net(directory: Path) -> Path:
        from finmlops.models.export import export_onnx

        return export_onnx(nrun.model, directory / "model.onnx", prep.window,
                           len(prep.input_names))

    return VariantOutcome(name, "neural", nrun.oos, nrun.metrics, nrun.baselines,
                          nrun.seconds, export_net, str(nrun.trained_until))


def score_panel(oos: pd.DataFrame, prep: Prepared) -> tuple[np.ndarray, np.ndarray, dict[
        str, np.ndarray | None]]:
    """The out-of-sample days' panels: dates, scores ``[T, N]`` and the aligned
    ``returns, volatility, adv, beta, market``."""
    scores = oos.pivot(index="date", columns="ticker", values="probability")
    scores = scores.reindex(columns=prep.tickers)
    dates = scores.index
    out: dict[str, np.ndarray | None] = {}
    for key in ("returns", "volatility", "adv", "beta"):
        out[key] = prep.panels[key].reindex(index=dates, columns=prep.tickers).to_numpy(
            np.float64)
    market = prep.panels["market"].reindex(index=dates).iloc[:, 0].to_numpy(np.float64)
    out["market"] = np.nan_to_num(market)
    # A decision on the last days has no known return yet: those days leave the book.
    known = np.isfinite(out["returns"]).any(axis=1)  # type: ignore[arg-type]
    for key in out:
        value = out[key]
        out[key] = None if value is None else value[known]
    return (dates.to_numpy(dtype="datetime64[ns]")[known],
            scores.to_numpy(np.float64)[known], out)


def sector_codes(prep: Prepared) -> list[int]:
    names = sorted(set(prep.sectors.values()))
    return [names.index(prep.sectors[t]) for t in prep.tickers]


def book(settings: Settings, prep: Prepared, oos: pd.DataFrame, *,
         portfolio: Any = None, stats: Any = None, capacity: bool = True) -> Any:
    """The :class:`~finmlops.evaluation.BookReport` of a variant's out-of-sample scores."""
    from finmlops.evaluation import evaluate_book

    dates, scores, p = score_panel(oos, prep)
    port = portfolio or settings.universe.portfolio
    return evaluate_book(scores, p["returns"], dates=dates,  # type: ignore[arg-type]
                         market=p["market"], portfolio=port,  # type: ignore[arg-type]
                         evaluation=settings.evaluation, volatility=p["volatility"],
                         adv=p["adv"], beta=p["beta"], sectors=sector_codes(prep),
                         stats=stats, capacity=capacity)


def trial_config(settings: Settings, prep: Prepared, variant: UniverseVariantSettings,
                 portfolio: Any = None) -> dict[str, Any]:
    """What identifies a universe trial in the ledger (every choice that changes its
    returns)."""
    u = settings.universe
    ev = settings.evaluation
    port = portfolio or u.portfolio
    model = variant.gbm.model_dump(mode="json") if variant.kind == "gbm" else \
        variant.network.model_dump(mode="json")
    return {
        "study": STUDY, "universe": prep.universe_key, "tickers": len(prep.tickers),
        "context": prep.context, "kind": variant.kind, "features": variant.features,
        "model": model, "label": u.label, "label_quantile": u.label_quantile,
        "cross_section": u.cross_section, "seed": settings.train.seed,
        "walk_forward": {"min_train_years": u.min_train_years,
                         "test_block_years": u.test_block_years,
                         "embargo_days": u.embargo_days, "cutoff": str(u.cutoff)},
        "portfolio": port.model_dump(mode="json", exclude={"capacity_capitals"}),
        "costs": ev.costs.model_dump(mode="json"), "execution": ev.execution,
    }


def universe_trials(settings: Settings, key: str) -> Any:
    """The trial set (count, Sharpe variances, PBO) of every trial of universe ``key``."""
    from finmlops.evaluation import trials_from_returns
    from finmlops.tracking import read_trials

    records = [r for r in read_trials(settings)
               if r.config.get("study") == STUDY and r.config.get("universe") == key]
    ev = settings.evaluation
    trials = trials_from_returns({r.trial_id: r.returns for r in records},
                                 prior=ev.prior_trials, pbo_splits=ev.pbo_splits,
                                 pbo_min_trials=ev.pbo_min_trials,
                                 counted=[f"{len(records)} books of this universe in the "
                                          "trial ledger"])
    sharpes = []
    for r in records:
        net = r.returns["net"].to_numpy(np.float64)
        sd = float(net.std(ddof=1)) if net.size > 1 else 0.0
        sharpes.append(float(net.mean()) / sd * np.sqrt(ev.periods_per_year) if sd > 0
                       else float("nan"))
    return trials, sharpes
