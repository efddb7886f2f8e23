"""``finmlops universe`` and ``finmlops search``: cross-sectional studies over many tickers
(a ranked long/short book per model, every figure benchmark-relative and deflated by every
trial of the universe) and the Optuna search whose trials all enter the trial ledger."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, print_json, settings_from


def _f(value: Any, fmt: str = ".2f") -> str:
    return "—" if value is None else format(value, fmt)


def book_rows(name: str, v: dict[str, Any]) -> list[str]:
    b = v["book"]
    m, ic, q, rel = b["metrics"], b["ic"], b["quantiles"], b["relative"]
    c = v["classification"]
    return [name, v["kind"], f"{c['accuracy']:.3f}", _f(ic["mean"], ".4f"), _f(ic["t"]),
            _f(q["spread_annual"], ".1%") if q["spread_annual"] is not None else "—",
            _f(q["spread"]["t"]), _f(b["gross_sharpe"]), _f(m["sharpe"]),
            _f(b["turnover"]["daily"]), _f(m["dsr"], ".3f"), _f(rel["active_dsr"], ".3f"),
            _f((b["capm"] or {}).get("beta")), _f((b["capm"] or {}).get("alpha_t"))]


HEADERS = ["variant", "kind", "accuracy", "IC", "IC t (NW)", "top-bottom / yr", "spread t",
           "gross Sharpe", "net Sharpe", "turnover/day", "DSR", "active DSR", "beta",
           "alpha t"]


def register(app: typer.Typer) -> None:
    @app.command("universe")
    def universe(
        ctx: typer.Context,
        variant: Annotated[list[str] | None, typer.Option(
            "--variant", help="Only this universe variant (repeatable; default: all).")] = None,
        no_record: Annotated[bool, typer.Option(
            "--no-record", help="Do not enter the books in the trial ledger.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Train every universe variant walk-forward, book its scores as a ranked long/short
        portfolio, record each book in the trial ledger and print IC, quantile spread, net
        Sharpe after costs, DSR over all trials of the universe, and PBO."""
        from finmlops.research import run_universe

        settings = settings_from(ctx)
        err = console(stderr=True)
        result = run_universe(settings, variants=variant, record=not no_record,
                              progress=lambda m: err.print(f"  {m}"))
        if as_json:
            print_json(result)
            return
        print_result(result)

    @app.command("search")
    def search(
        ctx: typer.Context,
        trials: Annotated[int | None, typer.Option(
            "--trials", min=0, help="Trials to run now (default universe.search.trials; 0: "
                                    "only summarise the study).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Optuna search over a universe variant's hyper-parameters, feature set and book;
        each trial is an MLflow child run in the trial ledger; the summary deflates the best
        by every trial of the universe and shows their Sharpe distribution and PBO."""
        from finmlops.research import run_search

        settings = settings_from(ctx)
        err = console(stderr=True)
        result = run_search(settings, trials=trials, progress=lambda m: err.print(f"  {m}"))
        if as_json:
            print_json(result)
            return
        print_search(result)


def _trials_lines(t: dict[str, Any] | None) -> list[str]:
    if not t:
        return ["trials: not recorded (--no-record)"]
    pbo = t["pbo"]
    lines = [f"trials of this universe in the ledger: {t['n']} (recorded {t['recorded']}, "
             f"prior {t['prior']})",
             f"PBO: {pbo['pbo']:.2f} over {pbo['n_trials']} trials" if pbo else
             f"PBO: {t['pbo_note']}"]
    h = t["sharpe_histogram"]
    if h["counts"]:
        lines.append("trial net Sharpe distribution: " + ", ".join(
            f"[{lo:.2f}, {hi:.2f}) {c}" for lo, hi, c in zip(h["edges"], h["edges"][1:],
                                                             h["counts"], strict=False) if c))
    return lines


def print_result(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    table = Table(title=f"universe {result['universe']}: {result['tickers']} tickers, "
                        f"label {result['label']}, execution {result['execution']}")
    for h in HEADERS:
        table.add_column(h)
    for name, v in result["variants"].items():
        table.add_row(*book_rows(name, v))
    out.print(table)
    for line in _trials_lines(result["trials"]):
        out.print(line)
    for name, v in result["variants"].items():
        cap = v["book"].get("capacity") or []
        if cap:
            out.print(f"{name} capacity, net Sharpe by capital (with the participation cap, "
                      "unfilled share): " + ", ".join(
                          f"${r['capital']:,.0f} {_f(r['net_sharpe'])} "
                          f"({_f(r.get('net_sharpe_capped'))}, "
                          f"{_f(r.get('unfilled_capped'), '.0%')})" for r in cap))
    out.print(f"note: {result['survivorship']}")
    if result["dropped_bars"]:
        out.print(f"dropped bars: {'; '.join(result['dropped_bars'])}")
    out.print(f"written: {result['path']}")


def print_search(result: dict[str, Any]) -> None:
    out = console()
    out.print(f"search {result['study']}: ran {result['ran']} trial(s), "
              f"{result['optuna_trials']} in the study")
    for line in _trials_lines(result["trials"]):
        out.print(line)
    best = result["best"]
    if best:
        b = best["book"]
        out.print(f"best: trial {best['number']} {best['params']}")
        out.print(f"  net Sharpe {_f(b['metrics']['sharpe'])}, DSR over all trials "
                  f"{_f(b['metrics']['dsr'], '.3f')} ({b['n_trials']} trials), IC "
                  f"{_f(b['ic']['mean'], '.4f')} (t {_f(b['ic']['t'])})")
    out.print(f"written: {result['path']}")
