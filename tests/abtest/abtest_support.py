"""Builders for the A/B tests (a uniquely named module, so test files can import it): requests
as the service commits them, written into a real experiment ledger through
:meth:`~finmlops.ledger.Ledger.record` and :meth:`~finmlops.ledger.Ledger.apply_feedback` —
never with SQL of their own — a simulation whose planted effect is skill, and the ledger
and CLI builders the fixtures root in a directory (tmp_path, or a module's own)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finmlops.config import Settings
from finmlops.ledger import Assignment, Feedback, Served, open_ledger

EXPERIMENT = "direction-ab"
LONG, FLAT = 0.8, 0.2
"""Probabilities that put a long/flat arm long (above the 0.5 threshold) or flat."""


@dataclass(frozen=True)
class Row:
    """One single-row request: the arm that ``served`` it, the probability of every arm that
    scored it (the served arm's and, with shadow scoring, the others'), and the realised
    next-day return posted as feedback (``None``: not known yet)."""

    day: dt.date
    served: str
    probs: Mapping[str, float]
    realized: float | None
    ticker: str = "IBB"
    experiment: str | None = EXPERIMENT
    assignment: Assignment = "hash"
    keyed: bool = True
    """With a routing key (``key``, default ``"<ticker>:<day>"``); without, the prediction is
    an entity of its own."""
    key: str | None = None
    ts: float | None = None
    """Serving time (default: 21:00 UTC of ``day`` plus one ms per row)."""


def day_ts(day: dt.date, i: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, 21, tzinfo=dt.UTC).timestamp() + i * 1e-3


def write_ledger(url: str, rows: Sequence[Row], settings: Settings, prefix: str = "p"
                 ) -> list[str]:
    """Commit ``rows`` into the ledger at ``url`` (created if need be; under the experiment
    version in force, seeded from ``settings.experiment`` when there is none) and post their
    outcomes by prediction id (``<prefix><row>``); returns the prediction ids, in order."""
    ledger = open_ledger(url)
    try:
        version = ledger.ensure_experiment(settings.experiment)
        weights = version.weights
        total = sum(weights.values())
        batch: list[Served] = []
        extra: dict[tuple[int, str], tuple[str, np.ndarray]] = {}
        pids: list[str] = []
        for i, r in enumerate(rows):
            pid = f"{prefix}{i:05d}"
            pids.append(pid)
            key = (r.key or f"{r.ticker}:{r.day.isoformat()}") if r.keyed else None
            randomised = r.assignment in ("hash", "random")
            propensity = weights.get(r.served, 0) / total if randomised else 1.0
            others = tuple(a for a in r.probs if a != r.served)
            batch.append(Served(
                r.ts if r.ts is not None else day_ts(r.day, i), (pid,), f"client-{i}",
                r.experiment, version.version if r.experiment else None, r.served, "1", key,
                r.assignment, propensity, np.zeros((1, 1, 1), np.float32),
                np.array([r.probs[r.served]], np.float32), others))
            for arm in others:
                extra[(i, arm)] = ("1", np.array([r.probs[arm]], np.float32))
        if batch:
            ledger.record(batch, extra)
        outcomes = [Feedback(r.realized, int(r.realized > 0), prediction_id=pid)
                    for pid, r in zip(pids, rows, strict=True) if r.realized is not None]
        if outcomes:
            ledger.apply_feedback(outcomes, "test", settings.evaluation)
    finally:
        ledger.close()
    return pids


def business_days(start: dt.date, n: int) -> list[dt.date]:
    out: list[dt.date] = []
    d = start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def simulate_rows(days: int = 300, seed: int = 0, shadow: bool = True, skill: float = 0.0,
                  share: float = 0.3, start: dt.date = dt.date(2019, 1, 2)) -> list[Row]:
    """One IBB request per business day; enhanced (the challenger) serves ``share`` of them.

    The market's next-day return is the same whichever arm served (both arms earn it through
    their own positions, by the ledger's P&L rule). baseline is long on a coin with
    P(long) = 0.6, whatever the day; enhanced, on a ``|skill|`` share of the days, knows the
    direction — long exactly on up days (``skill > 0``) or exactly on down days
    (``skill < 0``) — and on the others flips the same coin. With ``shadow`` both arms score
    every request (paired outcomes)."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0004, 0.015, days)
    rows: list[Row] = []
    for k, day in enumerate(business_days(start, days)):
        up = bool(market[k] > 0)
        base_long = rng.random() < 0.6
        informed = rng.random() < abs(skill)
        coin = rng.random() < 0.6
        enh_long = (up if skill > 0 else not up) if informed else coin
        served = "enhanced" if rng.random() < share else "baseline"
        probs = {"baseline": LONG if base_long else FLAT,
                 "enhanced": LONG if enh_long else FLAT}
        if not shadow:
            probs = {served: probs[served]}
        rows.append(Row(day, served, probs, float(market[k])))
    return rows


def ledger_maker(root: Path, default: Settings) -> Callable[..., str]:
    """``make(rows, name=..., config=...)`` -> the URL of a SQLite ledger in ``root``
    holding ``rows`` (:func:`write_ledger`); ``config`` (default: ``default``) seeds its
    experiment version."""

    def make(rows: Sequence[Row], name: str = "ledger.db", config: Settings | None = None
             ) -> str:
        url = f"sqlite:///{(root / name).resolve()}"
        write_ledger(url, rows, config or default)
        return url

    return make


def cli_in(root: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Any, Path]]:
    """``cli(*args, **config)`` -> (result, config path): ``finmlops abtest *args`` with a
    config file rooted in ``root`` (``section__key=value`` keyword arguments), run from
    ``root`` with no ``FINMLOPS_`` variable in the environment."""
    import yaml
    from typer.testing import CliRunner

    from finmlops.cli import app

    monkeypatch.chdir(root)
    for key in [k for k in os.environ if k.startswith("FINMLOPS_")]:
        monkeypatch.delenv(key)

    def invoke(*args: str, **config: Any) -> tuple[Any, Path]:
        cfg = root / "finmlops.yaml"
        tree: dict[str, Any] = {"home": str(root / "home")}
        for dotted, value in config.items():
            node = tree
            *parents, leaf = dotted.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        cfg.write_text(yaml.safe_dump(tree), "utf-8")
        result = CliRunner().invoke(app, ["--config", str(cfg), "abtest", *args])
        return result, cfg

    return invoke
