"""The report's A/B section, drawn from the abtest stage's ``abtest.json``.

A headline (both decisions, days to decide, how much narrower the paired confidence sequence
is), traffic against the configured split, per-arm hit rate and net P&L over time with 95%
bands, the sequential tests' estimate and confidence sequence against their decision
boundaries (split and paired on one y-scale), and the stress windows. Mean returns are in bps,
cumulative P&L and rates in %. Every part is optional: older or partial files (no paired
test when shadow scoring was off, no per-arm timelines) just leave that part out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finmlops.report._abtest_charts import _over_time, _sequential
from finmlops.report._abtest_values import (
    ACTION_COLORS,
    BPS,
    AddFigure,
    _arms,
    _bps,
    _ci,
    _decision,
    _esc,
    _get,
    _last_cs,
    _metric,
    _num,
    _nums,
    _p,
    _pct,
    _reached,
    _table,
    _unit,
)

# --- parts -----------------------------------------------------------------------------------

def _headline(ab: Mapping[str, Any], scale: float, unit: str) -> str:
    lines = []
    chal, ref = ab.get("challenger"), ab.get("reference")
    for view, key, label in (("split", "decision", "Split test (served traffic)"),
                             ("paired", "paired_decision", "Paired test (shadow scoring)")):
        action, reason = _decision(ab.get(key))
        if action is None and reason is None:
            if view == "paired":
                lines.append(f"<p><b>{label}:</b> not run (no arm was shadow-scored).</p>")
            continue
        color = ACTION_COLORS.get(action or "", "#222")
        lines.append(
            f"<p id='abtest-{view}'><b>{label}: <span style='color:{color}'>"
            f"{_esc((action or '-').upper())}</span></b>"
            + (f" — {_esc(reason)}" if reason else "")
            + f". <i>{_esc(_reached(ab, view))}.</i></p>")
    split_cs, paired_cs = _last_cs(ab, "split"), _last_cs(ab, "paired")
    if split_cs and paired_cs and paired_cs[1] > paired_cs[0]:
        ws, wp = split_cs[1] - split_cs[0], paired_cs[1] - paired_cs[0]
        lines.append(
            f"<p id='abtest-width'>At the end the paired 95% confidence sequence is "
            f"<b>{ws / wp:.1f}&times; narrower</b> than the split one (width {wp * scale:.1f} vs "
            f"{ws * scale:.1f} {unit}).</p>")
    facts = [f"challenger <b>{_esc(chal)}</b> vs reference <b>{_esc(ref)}</b>"
             if chal and ref else "",
             f"metric {_esc(_metric(ab))}",
             f"alpha {_esc(ab['alpha'])}" if _num(ab.get("alpha")) is not None else "",
             f"{_esc(ab['days'])} days of outcomes" if isinstance(ab.get("days"), int) else ""]
    minfx = _num(ab.get("min_effect"))
    if minfx is None:
        minfx = _num(_get(ab, "decision", "numbers", "min_effect"))
    if minfx is not None:
        facts.append(f"min effect {minfx * scale:.1f} {unit}")
    fact_line = ", ".join(f for f in facts if f)
    if fact_line:
        lines.append(f"<p class='muted'>{fact_line}.</p>")
    if not lines:
        return ""
    split_action = _decision(ab.get("decision"))[0]
    border = ACTION_COLORS.get(split_action or "", "#999")
    return (f"<div id='abtest-headline' style='padding:.8rem 1.2rem;border-radius:6px;"
            f"background:#f4f6f8;border-left:6px solid {border};margin:1rem 0'>"
            + "".join(lines) + "</div>")


def _traffic(ab: Mapping[str, Any], arms: Mapping[str, Mapping[str, Any]]) -> str:
    keys = ("served", "share", "target_share")
    if not any(a.get(k) is not None for a in arms.values() for k in keys):
        return ""
    chal, ref = ab.get("challenger"), ab.get("reference")
    rows = []
    for name, a in arms.items():
        role = "challenger" if name == chal else "reference" if name == ref else ""
        share, target = _num(a.get("share")), _num(a.get("target_share"))
        diff = (f"{100 * (share - target):+.2f} pt" if share is not None and target is not None
                else "-")
        served = _num(a.get("served"))
        rows.append([name, role, _pct(target), f"{served:,.0f}" if served is not None else "-",
                     _pct(share, 2), diff])
    srm = _get(ab, "decision", "numbers", "srm")
    p = _num(_get(srm, "p_value"))
    if p is None:
        tail = _nums(_get(ab, "timeline", "split", "srm_p"))
        p = tail[-1] if tail else None
    note = ""
    if p is not None:
        flag = (" — <b style='color:#c62828'>sample ratio mismatch: the split is not what was "
                "configured, decisions are invalid</b>" if _get(srm, "mismatch") else
                " — traffic matches the configured split")
        note = f"<p>Sample-ratio (SRM) always-valid test p = {_p(p)}{flag}.</p>"
    return ("<h3>Traffic</h3>"
            + _table(["arm", "role", "target share", "served", "served share", "off target"],
                     rows, "abtest-traffic") + note)


def _results(arms: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name, a in arms.items():
        n, mean = _num(a.get("n")), _num(a.get("mean_return"))
        total = n * mean if n is not None and mean is not None else None
        rows.append([name, f"{n:,.0f}" if n is not None else "-", _pct(a.get("hit_rate")),
                     _ci(a.get("hit_rate_ci"), _pct), _bps(mean),
                     _ci(a.get("mean_return_ci"), _bps), _pct(total)])
    if not rows:
        return ""
    return ("<h3>Served outcomes per arm</h3>"
            + _table(["arm", "outcomes", "hit rate", "95% CI", "mean net return", "95% CI",
                      "total net P&L"], rows, "abtest-arms"))


def _stress(ab: Mapping[str, Any]) -> str:
    windows = ab.get("stress_windows")
    if not isinstance(windows, Mapping) or not windows:
        return ""
    served_rows, paired_rows = [], []
    chal, ref = ab.get("challenger") or "challenger", ab.get("reference") or "reference"
    for name, w in windows.items():
        if not isinstance(w, Mapping):
            continue
        span = f"{w.get('start', '?')} to {w.get('end', '?')}"
        days = w.get("days", "-")
        served = w.get("served")
        for arm, a in (served.items() if isinstance(served, Mapping) else []):
            if isinstance(a, Mapping):
                served_rows.append([name, span, str(days), arm, str(a.get("n", "-")),
                                    _pct(a.get("hit_rate")), _bps(a.get("mean_return")),
                                    _pct(a.get("total_return"))])
        p = w.get("paired")
        if isinstance(p, Mapping):
            paired_rows.append([name, span, str(p.get("n", "-")), _pct(p.get("hit_rate")),
                                _pct(p.get("hit_rate_reference")), _pct(p.get("total_return")),
                                _pct(p.get("total_return_reference")),
                                _pct(p.get("total_diff")), _bps(p.get("mean_diff"))])
    out = "<h3>Stress windows</h3>"
    if served_rows:
        out += ("<p class='muted'>Served traffic (each arm on the days it served).</p>"
                + _table(["window", "dates", "days", "arm", "served outcomes", "hit rate",
                          "mean net return", "total net return"], served_rows,
                         "abtest-stress"))
    if paired_rows:
        out += (f"<p class='muted'>Shadow: both arms on every day of the window "
                f"({_esc(chal)} vs {_esc(ref)}).</p>"
                + _table(["window", "dates", "days", f"hit {chal}", f"hit {ref}",
                          f"total {chal}", f"total {ref}", "total difference",
                          "mean daily difference"], paired_rows, "abtest-stress-paired"))
    return out if served_rows or paired_rows else ""


def _fixed_n(ab: Mapping[str, Any]) -> str:
    rows = []
    tests = (("split", "decision", "net_return", "Welch t, net return", BPS, "bps"),
             ("split", "decision", "hit_rate", "two-proportion z, hit rate", 100.0, "pp"),
             ("paired", "paired_decision", "iid_diff", "paired t (iid), net return", BPS, "bps"),
             ("paired", "paired_decision", "daily_diff", "paired daily (HAC)", BPS,
              "bps"),
             ("paired", "paired_decision", "mcnemar", "McNemar, hit rate", 100.0, "pp"))
    for view, key, test, label, sc, u in tests:
        r = _get(ab, key, "numbers", test)
        est = _num(_get(r, "estimate"))
        if est is None:
            continue
        lo, hi = _num(_get(r, "lower")), _num(_get(r, "upper"))
        ci = (f"[{lo * sc:.1f}, {hi * sc:.1f}] {u}" if lo is not None and hi is not None
              else "-")
        rows.append([view, label, f"{est * sc:.2f} {u}", ci, _p(_get(r, "p_value"))])
    if not rows:
        return ""
    return ("<details><summary>Fixed-sample tests (for reading only: peeking every day "
            "inflates their error rate, so they never decide)</summary>"
            + _table(["test", "statistic", "estimate", "95% CI", "p"], rows) + "</details>")


def abtest_section(ab: Mapping[str, Any], add_figure: AddFigure) -> str:
    """The A/B section's HTML: headline, traffic, per-arm charts, sequential tests, stress."""
    if not isinstance(ab, Mapping):
        ab = {}
    scale, unit = _unit(_metric(ab))
    arms = _arms(ab)
    return "".join([
        "<h2 id='abtest'>A/B experiment</h2>",
        _headline(ab, scale, unit),
        _traffic(ab, arms),
        _results(arms),
        _over_time(ab, add_figure),
        _sequential(ab, add_figure, scale, unit),
        _stress(ab),
        _fixed_n(ab),
    ])
