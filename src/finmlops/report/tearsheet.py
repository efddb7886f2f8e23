"""The tear-sheet sections of the report: provenance, performance against every benchmark,
active return, calendar returns, rolling statistics, worst drawdowns, the return
distribution with its tail risk, forecast tests, and the trials behind the deflation.

Every number comes from ``evaluation.json`` (written by ``finmlops evaluate``); the only
arithmetic here is on its daily series (drawdowns and cumulative active return, for plots).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from finmlops.contracts import EvaluationFile
from finmlops.evaluation.columns import LINES
from finmlops.report import palette
from finmlops.report._format import fmt, table

AddFigure = Callable[[list[dict[str, Any]], dict[str, Any], int], str]
Column = Callable[[list[Any]], str]
LINE_NAMES = LINES
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PERCENT_AXIS = {"tickformat": ".0%"}


def _trace(name: str, x: str, y: list[Any] | str, label: str | None = None,
           key: str | None = None) -> dict[str, Any]:
    """A line trace coloured by ``key`` (the palette's line name; defaults to ``name``)."""
    return {"type": "scatter", "mode": "lines", "name": label or name, "x": x, "y": y,
            "line": palette.line(key or name)}


def provenance(info: Mapping[str, Any] | None, evaluation: EvaluationFile) -> str:
    """Who made this report from what: time, data, models with their MLflow runs, code,
    configuration, execution and trial count."""
    info = info or {}
    rows = [["generated at", info.get("generated_at", "-")],
            ["dataset version", info.get("dataset_version")
             or evaluation.dataset_version or "-"],
            ["git commit", info.get("git_commit", "-")],
            ["config hash", info.get("config_hash", "-")],
            ["execution", evaluation.execution.description],
            ["trials (DSR)", str(evaluation.trials.n)]]
    rows += [[k, str(v)] for k, v in (info.get("context") or {}).items()]
    models = info.get("models") or []
    mrows = [[m.get("variant", "-"), m.get("version") or "-", ", ".join(m.get("aliases") or [])
              or "-", m.get("run_id") or "-", m.get("weights_hash", "-")[:16]] for m in models]
    return ("<section id='provenance'><h2>Provenance</h2>" + table(["", ""], rows)
            + (table(["variant", "model version", "aliases", "MLflow run id", "weights"], mrows)
               if mrows else "") + "</section>")


def performance(evaluation: EvaluationFile, add: AddFigure, col: Column,
                metrics: Sequence[tuple[str, str, str]]) -> str:
    variants = evaluation.variants
    headers = ["variant", "line", *(h for h, _, _ in metrics)]
    rows = []
    for v, e in variants.items():
        for key, label in LINE_NAMES.items():
            m = e.metrics[key]
            rows.append([v, label, *(fmt(getattr(m, k), kind) for _, k, kind in metrics)])
    eq, dd = [], []
    for i, (v, e) in enumerate(variants.items()):
        s = e.series
        x = col(s["dates"])
        lines = [("strategy", v)] + ([("buy_and_hold", "buy_and_hold")] if i == 0 else [])
        for key, name in lines:
            if key in s:
                label = v if key == "strategy" else LINE_NAMES[key]
                eq.append(_trace(name, x, col(_round(s[key], 5)), label))
                dd.append(_trace(name, x, col(_drawdown(s[key])), label))
    cost = evaluation.cost_bps
    exe = evaluation.execution.description
    return (
        f"<h2 id='performance'>Performance net of costs</h2><p class='muted'>Positions "
        f"{html.escape(exe)}. Costs: {fmt(cost, 'g')} bps per unit of position change "
        "(commission + half-spread + slippage), plus market impact if configured. Buy &amp; "
        "hold pays no costs; always long pays one entry; exposure-matched holds buy &amp; hold "
        "at the strategy's mean position, the rest in cash.</p>"
        + table(headers, rows)
        + add(eq, {"title": {"text": "Equity (growth of 1)"}, "yaxis": {"type": "log"}}, 420)
        + add(dd, {"title": {"text": "Drawdown"}, "yaxis": PERCENT_AXIS}, 320))


def active(evaluation: EvaluationFile, add: AddFigure, col: Column) -> str:
    """Active return against buy-and-hold and the exposure-matched benchmark."""
    variants = evaluation.variants
    rows, reg_rows, traces = [], [], []
    for v, e in variants.items():
        rel = e.relative
        for b, a in (("buy_and_hold", rel.buy_and_hold),
                     ("exposure_matched", rel.exposure_matched)):
            rows.append([v, LINE_NAMES[b], fmt(a.active_total, "%"),
                         fmt(a.active_annual, "%"), fmt(a.tracking_error, "%"),
                         fmt(a.information_ratio), fmt(a.psr, "f3"), fmt(a.dsr, "f3"),
                         fmt(a.min_trl, "d"), fmt(a.sharpe_difference.p_value, "p"),
                         fmt(a.sharpe_difference_iid.p_value, "p"),
                         fmt(a.break_even_bps, "f1")])
        c = rel.capm
        reg_rows.append([v, fmt(c.alpha_annual, "%"), fmt(c.alpha_t), fmt(c.alpha_p, "p"),
                         fmt(c.beta), fmt(c.beta_t), fmt(c.r_squared), fmt(c.lags, "d"),
                         fmt(rel.exposure, "%")])
        s = e.series
        if s["strategy"] and s["buy_and_hold"]:
            x = col(s["dates"])
            for b, suffix in (("buy_and_hold", "vs buy & hold"),
                              ("exposure_matched", "vs exposure-matched")):
                if b not in s:
                    continue
                ratio = [None if a is None or z in (None, 0) else a / z - 1
                         for a, z in zip(s["strategy"], s[b], strict=False)]
                t = _trace(v, x, col(_round(ratio, 4)), f"{v} {suffix}")
                if b == "exposure_matched":
                    t["line"] = {**t["line"], "dash": "dot"}
                traces.append(t)
    fig = add(traces, {"title": {"text": "Cumulative active return (strategy / benchmark - 1)"},
                       "yaxis": PERCENT_AXIS}, 360) if traces else ""
    return (
        "<h2 id='active'>Active return</h2><p class='muted'>Daily active return = strategy net "
        "return minus the benchmark's. PSR/DSR/MinTRL here are of the active returns (is the "
        "strategy better than the benchmark, not better than nothing); the DSR is deflated by "
        "the trial count. The Sharpe-ratio difference p is one-sided (strategy above "
        "benchmark): Ledoit-Wolf with a HAC covariance, and the iid Jobson-Korkie-Memmel "
        "test beside it. Break-even: the cost per unit traded at which the mean active return "
        "is zero.</p>"
        + table(["variant", "vs", "active total", "active/yr", "tracking error", "IR",
                 "active PSR", "active DSR", "MinTRL days", "Sharpe diff p (LW)",
                 "p (JK-Memmel)", "break-even bps"], rows)
        + "<h3>Alpha and beta against buy &amp; hold</h3><p class='muted'>Excess returns "
          "regressed on buy-and-hold's, Newey-West standard errors; beta t tests beta = 1.</p>"
        + table(["variant", "alpha/yr", "alpha t (HAC)", "alpha p", "beta", "beta t (vs 1)",
                 "R²", "lags", "mean exposure"], reg_rows)
        + fig)


def calendar(evaluation: EvaluationFile) -> str:
    """Monthly and yearly returns as a heat-map table per variant, with buy-and-hold's year
    and the year's active return (compounded)."""
    parts = []
    for v, e in evaluation.variants.items():
        cal = e.tearsheet["calendar"]
        strat, bh = cal.get("strategy") or {}, cal.get("buy_and_hold") or {}
        monthly = {(r["year"], r["month"]): r["return"] for r in strat.get("monthly") or []}
        years = {r["year"]: r["return"] for r in strat.get("yearly") or []}
        bh_years = {r["year"]: r["return"] for r in bh.get("yearly") or []}
        if not years:
            continue
        head = "".join(f"<th>{h}</th>" for h in ("year", *MONTHS, "year", "B&amp;H", "active"))
        body = []
        for y in sorted(years):
            cells = [f"<td>{y}</td>"]
            for mth in range(1, 13):
                val = monthly.get((y, mth))
                cells.append(_heat_cell(val, 0.10))
            act = None
            if y in bh_years and bh_years[y] is not None and years[y] is not None:
                act = (1 + years[y]) / (1 + bh_years[y]) - 1
            cells += [_heat_cell(years[y], 0.30), _heat_cell(bh_years.get(y), 0.30),
                      _heat_cell(act, 0.20)]
            body.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<h3>{html.escape(v)}</h3><table class='heat'><thead><tr>{head}</tr>"
                     f"</thead><tbody>{''.join(body)}</tbody></table>")
    return ("<h2 id='calendar'>Monthly and yearly returns</h2><p class='muted'>Net of costs, "
            "compounded within each month and year; active = (1 + strategy) / (1 + buy &amp; "
            "hold) - 1 for the year. Colour saturates at ±10% a month, ±30% a year.</p>"
            + "".join(parts))


def rolling(evaluation: EvaluationFile, add: AddFigure, col: Column) -> str:
    variants = evaluation.variants
    figs: dict[str, list[dict[str, Any]]] = {"sharpe": [], "volatility": [], "beta": []}
    window = None
    for i, (v, e) in enumerate(variants.items()):
        s = e.series
        roll = s["rolling"]
        window = roll.get("window", window)
        if not roll:
            continue
        x = col(s["dates"])
        for k in figs:
            if k in (roll.get("strategy") or {}):
                figs[k].append(_trace(v, x, col(_round(roll["strategy"][k], 3))))
            if i == 0 and k in (roll.get("buy_and_hold") or {}):
                figs[k].append(_trace("buy_and_hold", x, col(_round(roll["buy_and_hold"][k], 3)),
                                      LINE_NAMES["buy_and_hold"]))
    if not any(figs.values()):
        return ""
    titles = {"sharpe": "Rolling Sharpe ratio (annualised)",
              "volatility": "Rolling volatility (annualised)",
              "beta": "Rolling beta to buy & hold"}
    axes = {"sharpe": {}, "volatility": PERCENT_AXIS, "beta": {}}
    return (f"<h2 id='rolling'>Rolling statistics</h2><p class='muted'>Trailing {window} "
            "trading days, on returns above the risk-free rate.</p>"
            + "".join(add(traces, {"title": {"text": f"{titles[k]}, {window} days"},
                                   "yaxis": axes[k]}, 300)
                      for k, traces in figs.items() if traces))


def drawdowns(evaluation: EvaluationFile) -> str:
    rows = []
    for v, e in evaluation.variants.items():
        dd = e.tearsheet["drawdowns"]
        for line in ("strategy", "buy_and_hold"):
            for rank, d in enumerate(dd.get(line) or [], start=1):
                rows.append([v if line == "strategy" else f"{v} days: buy & hold", str(rank),
                             d.get("peak", "-"), d.get("trough", "-"),
                             d.get("recovery") or "not recovered", fmt(d.get("depth"), "%"),
                             fmt(d.get("days"), "d")])
    return ("<h2 id='drawdowns'>Worst drawdowns</h2><p class='muted'>The five deepest falls "
            "from a peak: the last day at the peak, the trough, the first day back at the "
            "peak, and trading days from peak to recovery (to the last day if not recovered)."
            "</p>" + table(["line", "#", "peak", "trough", "recovery", "depth", "days"], rows))


def returns_distribution(evaluation: EvaluationFile, add: AddFigure) -> str:
    rows, traces = [], []
    for i, (v, e) in enumerate(evaluation.variants.items()):
        dist = e.tearsheet["distribution"]
        for line in ("strategy", "buy_and_hold"):
            d = dist.get(line) or {}
            if not d or (line == "buy_and_hold" and i > 0):
                continue
            name = v if line == "strategy" else LINE_NAMES[line]
            var, cvar = d.get("var") or {}, d.get("cvar") or {}
            lm = e.metrics[line]
            rows.append([name, fmt(d.get("mean"), "%2"), fmt(d.get("std"), "%2"),
                         fmt(lm.skew), fmt(lm.kurtosis),
                         fmt(var.get("0.95"), "%2"), fmt(cvar.get("0.95"), "%2"),
                         fmt(var.get("0.99"), "%2"), fmt(cvar.get("0.99"), "%2"),
                         fmt(d.get("worst"), "%2"), fmt(d.get("best"), "%2")])
            hist = d.get("histogram") or {}
            edges, counts = hist.get("edges") or [], hist.get("counts") or []
            n = sum(counts) or 1
            if len(edges) == len(counts) + 1 and counts:
                key = v if line == "strategy" else line
                traces.append({"type": "bar", "name": name, "opacity": 0.55,
                               "x": [(a + b) / 2 for a, b in itertools.pairwise(edges)],
                               "y": [c / n for c in counts],
                               "width": [b - a for a, b in itertools.pairwise(edges)],
                               "marker": {"color": palette.color(key)}})
    fig = add(traces, {"title": {"text": "Distribution of daily net returns"},
                       "barmode": "overlay", "xaxis": {"tickformat": ".1%"},
                       "yaxis": {"title": {"text": "share of days"}, "tickformat": ".0%"},
                       "hovermode": "closest"}, 340) if traces else ""
    return ("<h2 id='distribution'>Return distribution and tail risk</h2><p class='muted'>"
            "Historical one-day VaR: the loss exceeded on 5% (1%) of days; CVaR: the mean loss "
            "on those days. Kurtosis is not excess (3 for a normal distribution). Flat days "
            "make the strategy's spike at zero.</p>"
            + table(["line", "mean/day", "std/day", "skew", "kurtosis", "VaR 95%", "CVaR 95%",
                     "VaR 99%", "CVaR 99%", "worst day", "best day"], rows) + fig)


def forecasts(evaluation: EvaluationFile) -> str:
    rows = []
    for v, e in evaluation.variants.items():
        f = e.forecast
        mc, dm, auc = f.mcnemar_vs_always_up, f.diebold_mariano, f.auc
        lo, hi = auc.ci or (None, None)
        rows.append([v, f"{fmt(mc.wins, 'd')} / {fmt(mc.losses, 'd')}", fmt(mc.p_value, "p"),
                     fmt(dm.coin.mean_difference, "g"), fmt(dm.coin.p_value, "p"),
                     fmt(dm.base_rate.mean_difference, "g"), fmt(dm.base_rate.p_value, "p"),
                     f"{fmt(auc.auc, 'f3')} [{fmt(lo, 'f3')}, {fmt(hi, 'f3')}]",
                     fmt(auc.p_value, "p")])
    return ("<h3>Forecast tests on the same days</h3><p class='muted'>McNemar (exact): days "
            "only the model called right / days only always-up did (these are the model's "
            "\"down\" calls), two-sided p. Diebold-Mariano: mean log-loss of the model minus "
            "a naive forecast's per day (negative favours the model), two-sided p with the "
            "Harvey-Leybourne-Newbold correction; the naives are a coin (0.5) and the running "
            "share of up days. AUC with DeLong's 95% interval, p against 0.5.</p>"
            + table(["variant", "McNemar wins / losses", "p", "DM vs coin", "p",
                     "DM vs base rate", "p", "AUC [95% CI]", "p (AUC = 0.5)"], rows))


def trials(evaluation: EvaluationFile, add: AddFigure) -> str:
    t = evaluation.trials
    items = "".join(f"<li>{html.escape(c)}</li>" for c in t.counted)
    head = (f"<h2 id='trials'>Trials and overfitting</h2><p><b>{fmt(t.n, 'd')} trials"
            f"</b> deflate every DSR (source: {html.escape(t.source)}; Sharpe-ratio "
            f"variance: {html.escape(t.sr_variance_source)}).</p><ul>{items}</ul>")
    rows: list[list[str]] = []
    ks: list[int] = []
    for v, e in evaluation.variants.items():
        by = e.dsr_by_trials
        ks = by.trials
        for kind, values in (("active", by.active), ("absolute", by.absolute)):
            rows.append([v, kind, *(fmt(x, "f3") for x in values)])
    sens = ("<p class='muted'>What the DSR would be at other trial counts (same Sharpe-ratio "
            "variance):</p>" + table(["variant", "DSR of", *(f"{k} trials" for k in ks)], rows)
            if rows else "")
    pbo = t.pbo
    if pbo is None:
        return head + sens + f"<p class='muted'>{html.escape(t.pbo_note)}</p>"
    edges, counts = pbo.logit_histogram.edges, pbo.logit_histogram.counts
    fig = add([{"type": "bar", "name": "splits", "marker": {"color": palette.NEUTRAL},
                "x": [(a + b) / 2 for a, b in itertools.pairwise(edges)],
                "y": counts}],
              {"title": {"text": "CSCV: out-of-sample rank logit of the in-sample best trial"},
               "xaxis": {"title": {"text": "logit (≤ 0: below the median out of sample)"}},
               "hovermode": "closest", "showlegend": False}, 300) if counts else ""
    return (head + sens
            + f"<p><b>Probability of backtest overfitting: {fmt(pbo.pbo, 'f3')}</b> "
              f"({html.escape(t.pbo_note)}; {html.escape(pbo.metric)}"
              f", {pbo.start} to {pbo.end}). The in-sample best trial lost money "
              f"out of sample in {fmt(pbo.oos_below_zero, '%')} of splits.</p>" + fig)


def _heat_cell(value: float | None, scale: float) -> str:
    if value is None:
        return "<td></td>"
    return (f"<td style='background:{palette.heat(value, scale)}'>"
            f"{100 * value:.1f}</td>")


def _drawdown(equity: Sequence[float | None]) -> list[float | None]:
    peak, out = 1.0, list[float | None]()
    for x in equity:
        if x is None:
            out.append(None)
            continue
        peak = max(peak, x)
        out.append(float(f"{x / peak - 1.0:.3g}"))
    return out


def _round(values: Sequence[float | None], digits: int) -> list[float | None]:
    return [None if v is None else float(f"{v:.{digits}g}") for v in values]
