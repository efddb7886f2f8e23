"""The verdict at the top of the report: is any model worth anything, in a few plain lines.

A variant is "worth a closer look" only if its performance *against buy-and-hold of the
same instrument*, after costs, is significant and survives the trial count:

1. the deflated Sharpe ratio of its active returns (strategy minus buy-and-hold, daily) is
   at least :data:`DSR_LEVEL`, deflated by every trial in the ledger;
2. its Sharpe ratio exceeds buy-and-hold's by a significant margin (Ledoit-Wolf HAC test,
   one-sided p below the evaluation's ``alpha``);
3. when the ledger holds enough trials for it, the probability of backtest overfitting is at
   most :data:`PBO_LEVEL`.

Point estimates (a higher Sharpe ratio, a larger total return) never decide; an absolute
PSR/DSR against zero is shown but does not count, since a strategy that is mostly long earns
the market's Sharpe ratio without skill.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finmlops.contracts import EvaluationFile, VariantEvaluation

DSR_LEVEL = 0.95
PBO_LEVEL = 0.5
DEFAULT_ALPHA = 0.05


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


def _p(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def variant_verdict(variant: str, e: VariantEvaluation, cost_bps: float, n_trials: int,
                    alpha: float = DEFAULT_ALPHA, pbo: float | None = None) -> VariantVerdict:
    """Active DSR, the Sharpe-difference test and PBO decide; alpha, accuracy against
    always-up, the absolute DSR and the break-even cost explain."""
    act, capm = e.relative.buy_and_hold, e.relative.capm
    m, bh = e.metrics["strategy"], e.metrics["buy_and_hold"]
    trials = f" over {n_trials} trials" if n_trials else ""
    lines = []
    dsr = act.dsr
    dsr_ok = dsr is not None and dsr >= DSR_LEVEL
    lines.append(f"active return vs buy-and-hold {_pct(act.active_total)} in total, "
                 f"{_pct(act.active_annual)} a year, IR {_f(act.information_ratio)}"
                 f"; active DSR {_f(dsr, 3)}{trials} — "
                 f"{'significant' if dsr_ok else 'not significant'} (needs ≥ {DSR_LEVEL})")
    p = act.sharpe_difference.p_value
    sd_ok = p is not None and p < alpha
    lines.append(f"net Sharpe {_f(m.sharpe)} vs buy-and-hold {_f(bh.sharpe)}: "
                 f"difference p = {_p(p)} (Ledoit-Wolf, one-sided) — "
                 f"{'significant' if sd_ok else 'not significant'} (needs < {alpha:g})")
    lines.append(f"alpha {_pct(capm.alpha_annual)} a year (HAC t {_f(capm.alpha_t)}), "
                 f"beta {_f(capm.beta)}")
    pbo_ok = pbo is None or pbo <= PBO_LEVEL
    if pbo is not None:
        lines.append(f"probability of backtest overfitting {_f(pbo, 2)} — "
                     f"{'acceptable' if pbo_ok else 'too high'} (needs ≤ {PBO_LEVEL})")
    d = e.direction
    if d.accuracy is not None and d.always_up is not None and None not in d.accuracy_ci:
        lo, hi = d.accuracy_ci
        lines.append(f"accuracy {_pct(d.accuracy)} [{_pct(lo)}, {_pct(hi)}] vs always-up "
                     f"{_pct(d.always_up)}, McNemar p = "
                     f"{_p(e.forecast.mcnemar_vs_always_up.p_value)}")
    if m.dsr is not None:
        lines.append(f"absolute DSR {_f(m.dsr, 3)} (against zero: counts the market's "
                     "return as skill, not used)")
    be = act.break_even_bps
    lines.append("active return is negative even at zero cost: no break-even cost" if be is None
                 else f"break-even cost {be:.1f} bps per unit traded (configured "
                      f"{cost_bps:g} bps)")
    return VariantVerdict(variant, dsr_ok and sd_ok and pbo_ok, lines)


def verdict(evaluation: EvaluationFile) -> Verdict:
    """The report's headline from the evaluation's numbers."""
    trials = evaluation.trials
    pbo = trials.pbo.pbo if trials.pbo is not None else None
    per = [variant_verdict(v, e, evaluation.cost_bps, trials.n, evaluation.settings.alpha, pbo)
           for v, e in evaluation.variants.items()]
    good = [v.variant for v in per if v.worth]
    n = f" over {trials.n} trials" if trials.n else ""
    if good:
        headline = (f"Worth a closer look: {', '.join(good)} — significant active performance "
                    f"against buy-and-hold after costs, deflated{n}.")
    elif per:
        headline = ("Not worth trading: no variant shows significant active performance "
                    f"against buy-and-hold after costs, deflated{n}.")
    else:
        headline = "Nothing was evaluated."
    return Verdict(headline, bool(good), per)
