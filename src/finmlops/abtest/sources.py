"""Where sufficient statistics come from: the local prediction log, or Prometheus.

The log (SQLite, schema in docs/CONTRACTS.md) gives everything, including the per-day series
the Newey-West paired test needs. Prometheus gives only sums across replicas (what a cluster
has), enough for the split test, SRM, McNemar and the iid paired test.

Day of an outcome: the date in the request's ``routing_key`` (``"<ticker>:<YYYY-MM-DD>"``, as
the replay sends) when it has one, else the UTC date of the prediction's ``ts``. So a replay
of past days aggregates by market day, and live traffic by the day it was served.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from finmlops.abtest.paired import PairedStats
from finmlops.abtest.stats import ArmStats
from finmlops.errors import SourceError, StoreError

OUTCOME_COLUMNS = ["request_id", "day", "arm", "served", "hit", "net_return"]


@dataclass(frozen=True)
class Snapshot:
    """Everything the decision needs at one time, from either source."""

    arms: dict[str, ArmStats]
    served: dict[str, int]
    paired: dict[tuple[str, str], PairedStats] = field(default_factory=dict)
    """Keyed by ``(arm, reference)``."""
    daily_diff: dict[tuple[str, str], NDArray[np.float64]] = field(default_factory=dict)
    """Per-day mean paired differences (only from the log)."""
    days: list[str] = field(default_factory=list)
    daily_hit_diff: dict[tuple[str, str], NDArray[np.float64]] = field(default_factory=dict)
    """Per-day mean paired differences of hits (only from the log)."""


def _connect(path: str | Path) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"prediction log not found: {p}")
    try:
        return sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open prediction log {p}: {exc}") from None


def _day(routing_key: Any, ts: Any) -> str:
    if isinstance(routing_key, str) and ":" in routing_key:
        tail = routing_key.rsplit(":", 1)[1]
        try:
            return dt.date.fromisoformat(tail).isoformat()
        except ValueError:
            pass
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return "unknown"
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).date().isoformat()


def read_outcomes(path: str | Path, experiment: str) -> pd.DataFrame:
    """Every outcome row of ``experiment`` (served and shadow-scored) with its day."""
    sql = ("SELECT o.request_id, o.arm, o.served, o.hit, o.net_return, p.routing_key, p.ts "
           "FROM outcomes o JOIN predictions p ON p.request_id = o.request_id "
           "WHERE p.experiment = ? ORDER BY p.ts, o.request_id, o.arm")
    with _connect(path) as con:
        try:
            rows = con.execute(sql, (experiment,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"prediction log {path} is not readable: {exc}") from None
    df = pd.DataFrame(rows, columns=["request_id", "arm", "served", "hit", "net_return",
                                     "routing_key", "ts"])
    df["day"] = pd.Series([_day(k, t) for k, t in zip(df["routing_key"], df["ts"],
                                                       strict=True)], index=df.index,
                          dtype=object)
    df["served"] = df["served"].astype(bool)
    df["hit"] = df["hit"].astype(bool)
    df["net_return"] = df["net_return"].astype(float)
    return df[OUTCOME_COLUMNS]


def served_counts(path: str | Path, experiment: str) -> dict[str, int]:
    """Requests served per arm (for the sample-ratio check), outcomes or not."""
    with _connect(path) as con:
        try:
            rows = con.execute("SELECT arm, COUNT(*) FROM predictions WHERE experiment = ? "
                               "GROUP BY arm", (experiment,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"prediction log {path} is not readable: {exc}") from None
    return {str(a): int(n) for a, n in rows}


def arm_stats(outcomes: pd.DataFrame) -> dict[str, ArmStats]:
    """Per-arm statistics of the served outcomes."""
    served = outcomes[outcomes["served"]]
    return {str(arm): ArmStats.from_arrays(g["hit"].to_numpy(), g["net_return"].to_numpy())
            for arm, g in served.groupby("arm", sort=True)}


def paired_frame(outcomes: pd.DataFrame, arm: str, reference: str) -> pd.DataFrame:
    """Requests scored by both ``arm`` and ``reference``: day, hits and returns side by side."""
    a = outcomes.loc[outcomes["arm"] == arm, ["request_id", "day", "hit", "net_return"]]
    r = outcomes.loc[outcomes["arm"] == reference, ["request_id", "hit", "net_return"]]
    j = a.merge(r, on="request_id", how="inner", suffixes=("", "_ref"), validate="one_to_one")
    return j.sort_values(["day"], kind="stable").reset_index(drop=True)


def paired_stats(outcomes: pd.DataFrame, arm: str, reference: str
                 ) -> tuple[PairedStats, list[str], NDArray[np.float64]]:
    """Paired statistics plus the per-day mean difference of net returns (for HAC)."""
    stats, days, daily, _ = paired_daily(outcomes, arm, reference)
    return stats, days, daily


def paired_daily(outcomes: pd.DataFrame, arm: str, reference: str
                 ) -> tuple[PairedStats, list[str], NDArray[np.float64], NDArray[np.float64]]:
    """Paired statistics, the days, and per day the mean difference of net returns and of
    hits (challenger minus reference): one observation per day, however many tickers."""
    j = paired_frame(outcomes, arm, reference)
    stats = PairedStats.from_arrays(j["hit"].to_numpy(), j["hit_ref"].to_numpy(),
                                    j["net_return"].to_numpy(), j["net_return_ref"].to_numpy())
    diff = pd.DataFrame({"ret": j["net_return"] - j["net_return_ref"],
                         "hit": j["hit"].astype(float) - j["hit_ref"].astype(float),
                         "day": j["day"]}).groupby("day", sort=True).mean()
    return (stats, [str(d) for d in diff.index], diff["ret"].to_numpy(dtype=float),
            diff["hit"].to_numpy(dtype=float))


def from_prediction_log(path: str | Path, experiment: str) -> dict[str, ArmStats]:
    """Per-arm statistics of served outcomes in the log (the split test's input)."""
    return arm_stats(read_outcomes(path, experiment))


def paired_from_prediction_log(path: str | Path, experiment: str, arm: str,
                               reference: str) -> tuple[PairedStats, NDArray[np.float64]]:
    """Paired statistics over every request both arms scored, and the daily differences."""
    stats, _, daily = paired_stats(read_outcomes(path, experiment), arm, reference)
    return stats, daily


def snapshot_from_log(path: str | Path, experiment: str, reference: str | None = None
                      ) -> Snapshot:
    """Split and (when arms were shadow-scored) paired statistics from the log."""
    out = read_outcomes(path, experiment)
    arms = arm_stats(out)
    paired: dict[tuple[str, str], PairedStats] = {}
    daily: dict[tuple[str, str], NDArray[np.float64]] = {}
    daily_hit: dict[tuple[str, str], NDArray[np.float64]] = {}
    if reference is not None:
        for arm in sorted(set(out["arm"]) - {reference}):
            ps, _, d, h = paired_daily(out, str(arm), reference)
            if ps.n:
                paired[(str(arm), reference)] = ps
                daily[(str(arm), reference)] = d
                daily_hit[(str(arm), reference)] = h
    return Snapshot(arms, served_counts(path, experiment), paired, daily,
                    sorted(set(out["day"])), daily_hit)


# --- Prometheus -----------------------------------------------------------------------------

def _query(client: Any, url: str, promql: str) -> list[dict[str, Any]]:
    import httpx

    try:
        resp = client.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql})
    except httpx.HTTPError as exc:
        raise SourceError(f"Prometheus at {url} is unreachable: {exc}") from None
    try:
        body = resp.json()
    except ValueError:
        raise SourceError(f"Prometheus at {url} answered {resp.status_code} with no JSON") from None
    if resp.status_code != 200 or body.get("status") != "success":
        raise SourceError(f"Prometheus query failed ({resp.status_code}): "
                          f"{body.get('error', 'unknown error')}")
    data = body.get("data", {})
    if data.get("resultType") != "vector":
        raise SourceError(f"Prometheus answered a {data.get('resultType')!r}, not a vector")
    result: list[dict[str, Any]] = data.get("result", [])
    return result


def _by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for item in result:
        key = tuple(str(item.get("metric", {}).get(lab, "")) for lab in labels)
        out[key] = out.get(key, 0.0) + float(item["value"][1])
    return out


def _selector(experiment: str) -> str:
    escaped = experiment.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{experiment="{escaped}"}}'


def from_prometheus(url: str, experiment: str, *, token: str | None = None,
                    timeout: float = 10.0) -> Snapshot:
    """Sum the service's counters across replicas with the Prometheus HTTP API.

    Counters are exported with a ``_total`` suffix; sums of returns are gauges.
    """
    import httpx

    sel = _selector(experiment)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=timeout, headers=headers, trust_env=False) as client:
        def arm_sum(metric: str) -> dict[str, float]:
            res = _query(client, url, f"sum by (arm) ({metric}{sel})")
            return {k[0]: v for k, v in _by(res, "arm").items()}

        def pair_sum(metric: str, *extra: str) -> dict[tuple[str, ...], float]:
            by = ", ".join(["arm", "reference", *extra])
            return _by(_query(client, url, f"sum by ({by}) ({metric}{sel})"),
                       "arm", "reference", *extra)

        n = arm_sum("finmlops_feedback_total")
        hits = arm_sum("finmlops_feedback_hits_total")
        s = arm_sum("finmlops_feedback_return_sum")
        q = arm_sum("finmlops_feedback_return_sq_sum")
        served = arm_sum("finmlops_predictions_total")
        pn = pair_sum("finmlops_paired_outcomes_total")
        disc = pair_sum("finmlops_paired_discordant_total", "winner")
        ps = pair_sum("finmlops_paired_return_diff_sum")
        pq = pair_sum("finmlops_paired_return_diff_sq_sum")
    arms = {}
    for arm, count in n.items():
        nn = round(count)
        arms[arm] = ArmStats(nn, min(round(hits.get(arm, 0.0)), nn), s.get(arm, 0.0),
                             q.get(arm, 0.0))
    paired = {}
    for (arm, ref), count in pn.items():
        nn = round(count)
        b = round(disc.get((arm, ref, "arm"), 0.0))
        c = round(disc.get((arm, ref, "reference"), 0.0))
        if b + c > nn:  # scrapes of different series are not atomic
            b, c = min(b, nn), min(c, nn - min(b, nn))
        paired[(arm, ref)] = PairedStats(nn, b, c, ps.get((arm, ref), 0.0),
                                         pq.get((arm, ref), 0.0))
    return Snapshot(arms, {a: round(v) for a, v in served.items()}, paired)

