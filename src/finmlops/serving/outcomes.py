"""Position, predicted class and realised outcome of one prediction (docs/CONTRACTS.md)."""

from __future__ import annotations

from dataclasses import dataclass

from finmlops.config import EvaluationSettings


@dataclass(frozen=True)
class Policy:
    """How a probability becomes a position, and what a one-day round trip costs."""

    rule: str = "long_flat"
    threshold: float = 0.5
    cost: float = 3e-4
    """Per-side cost as a fraction: (commission + half spread + slippage) / 1e4."""

    @classmethod
    def from_settings(cls, evaluation: EvaluationSettings) -> Policy:
        costs = evaluation.costs
        c = (costs.commission_bps + costs.half_spread_bps + costs.slippage_bps) / 1e4
        return cls(rule=evaluation.rule, threshold=evaluation.threshold, cost=c)

    def predicted_class(self, probability: float) -> int:
        return 1 if probability > self.threshold else 0

    def position(self, probability: float) -> float:
        up = probability > self.threshold
        if self.rule == "long_short":
            return 1.0 if up else -1.0
        return 1.0 if up else 0.0

    def net_return(self, position: float, realized_return: float) -> float:
        """Following the signal for one day: a round trip, so the cost is paid twice."""
        return position * realized_return - 2.0 * self.cost * abs(position)


def direction_of(realized_return: float) -> int:
    return 1 if realized_return > 0 else 0
