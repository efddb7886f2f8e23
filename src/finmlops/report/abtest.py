"""The report's A/B section, drawn from the abtest stage's ``abtest.json``.

A headline (both decisions, days to decide, how much narrower the paired confidence sequence
is), traffic against the configured split, per-arm hit rate and net P&L over time with 95%
bands, the sequential tests' estimate and confidence sequence against their decision
boundaries (split and paired on one y-scale), and the stress windows. Mean returns are in bps,
cumulative P&L and rates in %. The paired parts are left out when no arm was shadow-scored,
the day-by-day charts while no outcome has arrived.
"""

from __future__ import annotations

from pathlib import Path

from finmlops.contracts import AbtestSummary, ArmSummary, DecisionRecord, TestNumbers
from finmlops.report._abtest_charts import over_time, sequential_chart
from finmlops.report._abtest_values import (
    ACTION_COLORS,
    BPS,
    AddFigure,
    View,
    bps_text,
    ci_text,
    decision_of,
    esc,
    last_cs,
    p_text,
    pct,
    reached_text,
    table_html,
    unit_of,
)


def read_abtest(path: Path) -> AbtestSummary:
    """The abtest stage's ``abtest.json``, validated once."""
    return AbtestSummary.read_stage_file(path, "A/B result", "abtest")


# --- parts -----------------------------------------------------------------------------------

def _decision_line(ab: AbtestSummary, view: View, label: str) -> str:
    decision = decision_of(ab, view)
    if decision is None:
        return f"<p><b>{label}:</b> not run (no arm was shadow-scored).</p>"
    color = ACTION_COLORS[decision.action]
    return (f"<p id='abtest-{view}'><b>{label}: <span style='color:{color}'>"
            f"{esc(decision.action.upper())}</span></b> — {esc(decision.reason)}"
            f". <i>{esc(reached_text(ab, view))}.</i></p>")


def _width_line(ab: AbtestSummary, scale: float, unit: str) -> str:
    """How much narrower the paired confidence sequence ends than the split one."""
    split_cs, paired_cs = last_cs(ab, "split"), last_cs(ab, "paired")
    if split_cs is None or paired_cs is None or paired_cs[1] <= paired_cs[0]:
        return ""
    ws, wp = split_cs[1] - split_cs[0], paired_cs[1] - paired_cs[0]
    return (f"<p id='abtest-width'>At the end the paired 95% confidence sequence is "
            f"<b>{ws / wp:.1f}&times; narrower</b> than the split one (width {wp * scale:.1f} vs "
            f"{ws * scale:.1f} {unit}).</p>")


def _headline(ab: AbtestSummary, scale: float, unit: str) -> str:
    facts = (f"challenger <b>{esc(ab.challenger)}</b> vs reference <b>{esc(ab.reference)}</b>"
             f", metric {esc(ab.metric)}, alpha {esc(ab.alpha)}, {ab.days} days of outcomes"
             f", min effect {ab.min_effect * scale:.1f} {unit}")
    border = ACTION_COLORS[ab.decision.action]
    return (f"<div id='abtest-headline' style='padding:.8rem 1.2rem;border-radius:6px;"
            f"background:#f4f6f8;border-left:6px solid {border};margin:1rem 0'>"
            + _decision_line(ab, "split", "Split test (served traffic)")
            + _decision_line(ab, "paired", "Paired test (shadow scoring)")
            + _width_line(ab, scale, unit)
            + f"<p class='muted'>{facts}.</p></div>")


def _role(ab: AbtestSummary, arm: str) -> str:
    return "challenger" if arm == ab.challenger else "reference" if arm == ab.reference else ""


def _traffic(ab: AbtestSummary) -> str:
    rows = []
    for name, a in ab.arms.items():
        diff = (f"{100 * (a.share - a.target_share):+.2f} pt"
                if a.share is not None and a.target_share is not None else "-")
        rows.append([name, _role(ab, name), pct(a.target_share), f"{a.served:,}",
                     pct(a.share, 2), diff])
    srm = ab.decision.numbers.srm
    note = ""
    if srm is not None:
        flag = (" — <b style='color:#c62828'>sample ratio mismatch: the split is not what was "
                "configured, decisions are invalid</b>" if srm.mismatch else
                " — traffic matches the configured split")
        note = f"<p>Sample-ratio (SRM) always-valid test p = {p_text(srm.p_value)}{flag}.</p>"
    return ("<h3>Traffic</h3>"
            + table_html(["arm", "role", "target share", "served", "served share", "off target"],
                     rows, "abtest-traffic") + note)


def _total(a: ArmSummary) -> float | None:
    return None if a.mean_return is None else a.n * a.mean_return


def _results(ab: AbtestSummary) -> str:
    rows = [[name, f"{a.n:,}", pct(a.hit_rate), ci_text(a.hit_rate_ci, pct),
             bps_text(a.mean_return), ci_text(a.mean_return_ci, bps_text), pct(_total(a))]
            for name, a in ab.arms.items()]
    return ("<h3>Served outcomes per arm</h3>"
            + table_html(["arm", "outcomes", "hit rate", "95% CI", "mean net return", "95% CI",
                      "total net P&L"], rows, "abtest-arms"))


def _stress(ab: AbtestSummary) -> str:
    if not ab.stress_windows:
        return ""
    served_rows, paired_rows = [], []
    chal, ref = ab.challenger, ab.reference
    for name, w in ab.stress_windows.items():
        span = f"{w.start} to {w.end}"
        for arm, a in w.served.items():
            served_rows.append([name, span, str(w.days), arm, str(a.n), pct(a.hit_rate),
                                bps_text(a.mean_return), pct(a.total_return)])
        if (p := w.paired) is not None:
            paired_rows.append([name, span, str(p.n), pct(p.hit_rate),
                                pct(p.hit_rate_reference), pct(p.total_return),
                                pct(p.total_return_reference), pct(p.total_diff),
                                bps_text(p.mean_diff)])
    out = ("<h3>Stress windows</h3><p class='muted'>Served traffic (each arm on the days it "
           "served).</p>"
           + table_html(["window", "dates", "days", "arm", "served outcomes", "hit rate",
                     "mean net return", "total net return"], served_rows, "abtest-stress"))
    if paired_rows:
        out += (f"<p class='muted'>Shadow: both arms on every day of the window "
                f"({esc(chal)} vs {esc(ref)}).</p>"
                + table_html(["window", "dates", "days", f"hit {chal}", f"hit {ref}",
                          f"total {chal}", f"total {ref}", "total difference",
                          "mean daily difference"], paired_rows, "abtest-stress-paired"))
    return out


def _fixed_n_tests(split: DecisionRecord, paired: DecisionRecord | None
                   ) -> list[tuple[View, str, TestNumbers | None, float, str]]:
    """Each fixed-sample test a decision reports: view, label, numbers, scale and unit."""
    tests: list[tuple[View, str, TestNumbers | None, float, str]] = [
        ("split", "Welch t, net return", split.numbers.net_return, BPS, "bps"),
        ("split", "two-proportion z, hit rate", split.numbers.hit_rate, 100.0, "pp")]
    if paired is not None:
        tests += [("paired", "paired t (iid), net return", paired.numbers.iid_diff, BPS, "bps"),
                  ("paired", "paired daily (HAC)", paired.numbers.daily_diff, BPS, "bps"),
                  ("paired", "McNemar, hit rate", paired.numbers.mcnemar, 100.0, "pp")]
    return tests


def _fixed_n(ab: AbtestSummary) -> str:
    rows = []
    for view, label, r, sc, u in _fixed_n_tests(ab.decision, ab.paired_decision):
        if r is None or r.estimate is None:
            continue
        ci = (f"[{r.lower * sc:.1f}, {r.upper * sc:.1f}] {u}"
              if r.lower is not None and r.upper is not None else "-")
        rows.append([view, label, f"{r.estimate * sc:.2f} {u}", ci, p_text(r.p_value)])
    if not rows:
        return ""
    return ("<details><summary>Fixed-sample tests (for reading only: peeking every day "
            "inflates their error rate, so they never decide)</summary>"
            + table_html(["test", "statistic", "estimate", "95% CI", "p"], rows) + "</details>")


def abtest_section(ab: AbtestSummary, add_figure: AddFigure) -> str:
    """The A/B section's HTML: headline, traffic, per-arm charts, sequential tests, stress."""
    scale, unit = unit_of(ab.metric)
    return "".join([
        "<h2 id='abtest'>A/B experiment</h2>",
        _headline(ab, scale, unit),
        _traffic(ab),
        _results(ab),
        over_time(ab, add_figure),
        sequential_chart(ab, add_figure, scale, unit),
        _stress(ab),
        _fixed_n(ab),
    ])
