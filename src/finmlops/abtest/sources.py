"""The experiment's evidence, from the ledger, and the sufficient statistics derived from it.

Every figure of a decision comes from one read of the ledger (:class:`Evidence`): the
outcomes of every (prediction, arm) with net returns by the backtest's rule
(:mod:`finmlops.ledger.pnl`), the randomised assignments per experiment version (the
sample-ratio check's input), and each version's weights. Pinned predictions are not in it.
The functions below are pure: outcome frames in, statistics out.

Prometheus is for dashboards and alerts, not decisions: its counters live in processes that
restart, and the paired test needs per-day series that counters cannot give.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from finmlops.abtest.paired import PairedStats
from finmlops.abtest.stats import ArmStats
from finmlops.config import ExperimentSettings, Settings
from finmlops.ledger import ExperimentVersion, Ledger

OUTCOME_COLUMNS = ["request_id", "day", "arm", "served", "hit", "net_return"]


@dataclass(frozen=True)
class Evidence:
    """Everything a decision reads, from one experiment in one ledger."""

    experiment: ExperimentSettings
    """The definition in force (its arms and weights), or the configured one before any."""
    version: int
    outcomes: pd.DataFrame
    """One row per (prediction, arm) with a realised return (``OUTCOME_COLUMNS`` and
    ``position``, ``entity``, ``config_version``)."""
    assignments: dict[int, dict[str, int]] = field(default_factory=dict)
    """Randomised assignments per version and arm."""
    weights: dict[int, dict[str, float]] = field(default_factory=dict)
    """Each version's target weights."""

    @property
    def served(self) -> dict[str, int]:
        """Randomised assignments per arm, over every version."""
        out: dict[str, int] = {}
        for counts in self.assignments.values():
            for arm, n in counts.items():
                out[arm] = out.get(arm, 0) + n
        return out

    @property
    def served_in_force(self) -> dict[str, int]:
        """Randomised assignments per arm under the version in force."""
        return dict(self.assignments.get(self.version, {}))


def read_evidence(ledger: Ledger, settings: Settings) -> Evidence:
    """The experiment named by ``settings.experiment.name``, as the ledger holds it."""
    name = settings.experiment.name
    versions = ledger.experiment_versions(name)
    current: ExperimentVersion | None = versions[-1] if versions else None
    return Evidence(
        experiment=current.config if current is not None else settings.experiment,
        version=current.version if current is not None else 0,
        outcomes=ledger.outcomes(name, settings.evaluation),
        assignments=ledger.assignment_counts(name),
        weights={v.version: v.weights for v in versions})


def arm_stats(outcomes: pd.DataFrame) -> dict[str, ArmStats]:
    """Per-arm statistics of the served outcomes."""
    served = outcomes[outcomes["served"]]
    return {str(arm): ArmStats.from_arrays(g["hit"].to_numpy(), g["net_return"].to_numpy())
            for arm, g in served.groupby("arm", sort=True)}


def paired_frame(outcomes: pd.DataFrame, arm: str, reference: str) -> pd.DataFrame:
    """Predictions scored by both ``arm`` and ``reference``: day, hits and returns side by
    side (a prediction without one of the two scores is not paired)."""
    a = outcomes.loc[outcomes["arm"] == arm, ["request_id", "day", "hit", "net_return"]]
    r = outcomes.loc[outcomes["arm"] == reference, ["request_id", "hit", "net_return"]]
    j = a.merge(r, on="request_id", how="inner", suffixes=("", "_ref"), validate="one_to_one")
    return j.sort_values(["day"], kind="stable").reset_index(drop=True)


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
