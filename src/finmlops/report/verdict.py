"""The verdict at the top of the report: is any model worth anything, in a few plain lines.

A variant is "worth trading" only if all three hold: its direction accuracy's 95% interval
lies above always-up, its net Sharpe beats buy-and-hold's, and its deflated Sharpe ratio
(deflated by the number of trials) is at least :data:`DSR_LEVEL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DSR_LEVEL = 0.95


@dataclass(frozen=True)
class VariantVerdict:
    variant: str
    worth: bool
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    headline: str
    worth: bool
    variants: list[VariantVerdict]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def variant_verdict(variant: str, e: Mapping[str, Any], cost_bps: float | None,
                    n_trials: int | None) -> VariantVerdict:
    """Accuracy against always-up, net Sharpe against buy-and-hold, DSR, break-even cost."""
    d = e.get("direction") or {}
    acc, ci, up = d.get("accuracy"), d.get("accuracy_ci") or [None, None], d.get("always_up")
    lines = []
    acc_ok = False
    if acc is not None and up is not None and None not in ci:
        if ci[0] > up:
            rel, acc_ok = "above", True
        elif ci[1] < up:
            rel = "below"
        else:
            rel = "not distinguishable from"
        lines.append(f"accuracy {_pct(acc)} [{_pct(ci[0])}, {_pct(ci[1])}] — {rel} "
                     f"always-up {_pct(up)}")
    m = (e.get("metrics") or {}).get("strategy") or {}
    bh = (e.get("metrics") or {}).get("buy_and_hold") or {}
    sr, bh_sr = m.get("sharpe"), bh.get("sharpe")
    sharpe_ok = sr is not None and (bh_sr is None or sr > bh_sr)
    lines.append(f"net Sharpe {_f(sr)} vs buy-and-hold {_f(bh_sr)}; total return "
                 f"{_pct(m.get('total_return'))} vs {_pct(bh.get('total_return'))}")
    dsr = m.get("dsr")
    dsr_ok = dsr is not None and dsr >= DSR_LEVEL
    trials = f" over {n_trials} trials" if n_trials else ""
    lines.append(f"deflated Sharpe ratio {_f(dsr, 3)}{trials} — "
                 f"{'significant' if dsr_ok else 'not significant'} (needs ≥ {DSR_LEVEL})")
    be = e.get("break_even_bps")
    cost = f" (configured {cost_bps:g} bps)" if cost_bps is not None else ""
    lines.append("never beats buy-and-hold, even at zero cost" if be is None
                 else f"break-even cost {be:.1f} bps per unit traded{cost}")
    return VariantVerdict(variant, acc_ok and sharpe_ok and dsr_ok, lines)


def verdict(evaluation: Mapping[str, Any]) -> Verdict:
    """The report's headline from the evaluation's numbers."""
    n_trials = (evaluation.get("trials") or {}).get("n")
    per = [variant_verdict(v, e, evaluation.get("cost_bps"), n_trials)
           for v, e in (evaluation.get("variants") or {}).items()]
    good = [v.variant for v in per if v.worth]
    if good:
        headline = (f"Worth a closer look: {', '.join(good)} beat always-up and buy-and-hold "
                    "after costs, with a significant deflated Sharpe ratio.")
    elif per:
        headline = ("Not worth trading: no variant beats both always-up accuracy and "
                    "buy-and-hold after costs with a significant deflated Sharpe ratio.")
    else:
        headline = "Nothing was evaluated."
    return Verdict(headline, bool(good), per)
