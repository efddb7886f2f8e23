"""``finmlops abtest replay|feedback|status|decide``: drive, answer, watch and decide the A/B
experiment.

``feedback`` posts the realised one-day return of (ticker, as-of date) by routing key to a
running service (``--url``) or writes it straight into the experiment ledger (``--ledger``):
what the daily CronWorkflow runs. ``status`` and ``decide`` read the ledger (``--ledger-url``;
default: the latest replay's ledger from the run state when ``ledger.url`` is not set, else
``ledger.url``). ``decide --apply`` moves the MLflow aliases and puts the new weights in force
as a new experiment version in the ledger, which every replica picks up; with
``gitops.enabled`` (the cluster) it hands the same change to Git instead: a commit to the
environment's promotion record (or a branch for review), which Argo CD applies after its
sync (``finmlops promotion apply``) and ``git revert`` rolls back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import (
    JsonOption,
    console,
    current_user,
    date_option,
    emit,
    print_json,
    run_stage,
    settings_from,
)

if TYPE_CHECKING:
    from finmlops.config import Settings
    from finmlops.contracts import AbtestSummary

UrlOption = Annotated[str | None, typer.Option(
    "--url", help="Base URL of a running V2 service (default: start one in-process).")]
LedgerOption = Annotated[str | None, typer.Option(
    "--ledger-url", help="Experiment ledger to read (sqlite:///... or postgresql://...); "
                         "default: the latest replay's, else ledger.url.")]

group = typer.Typer(name="abtest", no_args_is_help=True,
                    help="Replay traffic, watch and decide the A/B experiment.")


@group.command("replay")
def replay_cmd(
    ctx: typer.Context,
    url: UrlOption = None,
    start: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD).")] = None,
    seldon: Annotated[bool, typer.Option(
        "--seldon", help="Address a Seldon Core v2 Experiment: send the header "
                         "seldon-model: <experiment>.experiment (with --url).")] = False,
    per_row: Annotated[bool, typer.Option(
        "--per-row", help="Send each day's tickers together, one routing key per row (a "
                          "finmlops service; with --url). Default: one request per ticker "
                          "and day, which any V2 endpoint takes.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Replay held-out days as live traffic (every ticker and day under its routing key, then
    that day's outcomes as feedback)."""
    overrides = {"abtest.replay_start": date_option(start, "--start"),
                 "abtest.replay_end": date_option(end, "--end")}
    settings = settings_from(ctx, overrides)
    if url is None:
        from pathlib import Path

        from finmlops.report import read_abtest

        state = run_stage(settings, "abtest", as_json)
        summary = read_abtest(Path(state.abtest.path if state.abtest else ""))
        if as_json:
            print_json(summary.to_json())
            return
        _print_status(summary)
        return
    result = _replay_remote(settings, url, as_json, seldon, per_row)
    if as_json:
        print_json(result)
        return
    console().print(f"replayed {result['requests']} requests over {result['days']} days "
                    f"to {url} ({result['feedback']} outcomes); served {result['served']}")


@group.command("feedback")
def feedback_cmd(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", help="Base URL of the running V2 service to post to.")] = None,
    ledger: Annotated[bool, typer.Option(
        "--ledger", help="Write the outcomes straight into the experiment ledger "
                         "(ledger.url) instead of posting them.")] = False,
    date: Annotated[str | None, typer.Option(
        "--date", help="As-of date (YYYY-MM-DD); default: each ticker's newest date "
                       "with a known forward return.")] = None,
    tickers: Annotated[str | None, typer.Option(
        "--tickers", help="Comma-separated tickers (default: features.target).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Every as-of date from this one (YYYY-MM-DD) whose return is "
                        "known (empty: as without it), e.g. after missed days.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Dataset version to compute the returns from (default: the newest).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Record realised one-day returns by routing key (TICKER:DATE): posted to
    /v2/feedback (--url) or written into the ledger (--ledger)."""
    from finmlops.abtest import record_realised
    from finmlops.errors import ConfigError

    if (url is None) == (not ledger):
        raise ConfigError("give exactly one of --url (post to the service) or --ledger "
                          "(write into the ledger)")
    if date and since:
        raise ConfigError("give --date or --since, not both")
    settings = settings_from(ctx)
    names = None if tickers is None else [t.strip().upper() for t in tickers.split(",")
                                          if t.strip()]
    out = record_realised(settings, url, date_option(date, "--date"), names, f"cli:{_user()}",
                          since=date_option(since or None, "--since"),
                          dataset=None if dataset in (None, "", "latest") else dataset)
    emit(ctx, {"feedback": out["answer"]})
    if as_json:
        print_json(out)
        return
    c = console()
    for o in out["posted"]:
        c.print(f"posted {o['routing_key']}: realized_return {o['realized_return']:+.6f} "
                f"(close {o['date']} -> {o['until']}, direction {o['direction']})")
    a = out["answer"]
    unknown = ", ".join(a.get("unknown") or []) or "none"
    c.print(f"{out['target']}: accepted {a.get('accepted')}, duplicates "
            f"{a.get('duplicates')}, unknown {unknown}")


@group.command("status")
def status_cmd(
    ctx: typer.Context,
    ledger_url: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per-arm numbers with CIs, comparisons, the sequential test, MDE and split vs paired."""
    settings = settings_from(ctx)
    summary = _analyse(settings, ledger_url)
    if as_json:
        print_json(summary.to_json())
        return
    _print_status(summary)


def register(app: typer.Typer) -> None:
    @group.command("decide")
    def decide_cmd(
        ctx: typer.Context,
        apply: Annotated[bool, typer.Option(
            "--apply", help="Act on it: promote or roll back in MLflow and put the new "
                            "weights in force (a new experiment version in the ledger).")]
        = False,
        test: Annotated[str, typer.Option(
            "--test", help="auto (paired when shadow data exist), split or paired.")] = "auto",
        actor: Annotated[str | None, typer.Option(help="Who applies it (default: $USER).")]
        = None,
        ledger_url: LedgerOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Print the decision and its numbers; with --apply, carry it out."""
        from finmlops.errors import ConfigError
        from finmlops.pipeline import apply_decision, choose_decision, propose_decision

        if test not in ("auto", "split", "paired"):
            raise ConfigError(f"--test must be auto, split or paired, not {test!r}")
        settings = settings_from(ctx)
        url = ledger_url or default_ledger(settings)
        chosen = choose_decision(_analyse(settings, url), test)
        out: dict[str, Any] = {"test": chosen.test, "decision": chosen.to_json()}
        if apply and settings.gitops.enabled:
            out["proposed"] = propose_decision(settings, chosen, actor=actor or _user(),
                                               ledger_url=url).to_json()
        elif apply:
            out["applied"] = apply_decision(settings, chosen, actor=actor or _user(),
                                            ledger_url=url).to_json()
        emit(ctx, {"action": chosen.record.action,
                   "change": out.get("proposed") or out.get("applied") or {},
                   "decision.json": out})
        if as_json:
            print_json(out)
            return
        c = console()
        c.print(f"[bold]{chosen.record.action}[/] ({chosen.test} test): {chosen.record.reason}")
        seq = chosen.record.numbers.sequential
        if seq:
            c.print(f"  always-valid p={_num(seq.p_value)}, CS "
                    f"[{_num(seq.lower)}, {_num(seq.upper)}]")
        if "applied" in out:
            c.print(f"  applied: {out['applied']}")
        if "proposed" in out:
            p = out["proposed"]
            where = f"{p['repo']} {p['branch']}"
            c.print(f"  proposed: {', '.join(c_[:12] for c_ in p['commits'])} on {where}"
                    if p["pushed"] else f"  not proposed: {p.get('note') or 'nothing to do'}")

    app.add_typer(group)


_user = current_user


def _replay_remote(settings: Settings, url: str, as_json: bool, seldon: bool = False,
                   per_row: bool = False) -> dict[str, Any]:
    """Replay against a running service, with a progress bar on the terminal."""
    from rich.progress import Progress

    from finmlops.pipeline import replay_to

    with Progress(console=console(), transient=True, disable=as_json) as bar:
        task = bar.add_task("replaying", total=None)

        def progress(done: int, total: int, day: str) -> None:
            bar.update(task, completed=done, total=total, description=f"replaying {day}")

        return replay_to(settings, url, on_progress=progress, seldon=seldon, per_row=per_row)


def default_ledger(settings: Settings) -> str:
    """The ledger ``status`` and ``decide`` read (:func:`finmlops.pipeline.default_ledger`)."""
    from finmlops.pipeline import default_ledger as of_home

    return of_home(settings)


def _analyse(settings: Settings, ledger_url: str | None) -> AbtestSummary:
    from finmlops.abtest import analyse_ledger
    from finmlops.contracts.abtest import LedgerSource
    from finmlops.ledger import redact

    url = ledger_url or default_ledger(settings)
    source = LedgerSource(kind="ledger", url=redact(url))
    return analyse_ledger(settings, url).model_copy(update={"source": source})


def _num(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:.3g}"


def _ci(pair: Any, pct: bool = False) -> str:
    if not pair or pair[0] is None:
        return ""
    return f" [{_num(pair[0], pct)}, {_num(pair[1], pct)}]"


def _print_status(summary: AbtestSummary) -> None:
    from rich.table import Table

    c = console()
    table = Table(title=f"experiment {summary.experiment}: {summary.challenger} vs "
                        f"{summary.reference} on {summary.metric}", title_justify="left")
    for col in ("arm", "n", "hit rate [CI]", "mean net return [CI]", "share / target"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, a in summary.arms.items():
        table.add_row(arm, str(a.n), _num(a.hit_rate, True) + _ci(a.hit_rate_ci, True),
                      _num(a.mean_return) + _ci(a.mean_return_ci),
                      f"{_num(a.share, True)} / {_num(a.target_share, True)}")
    c.print(table)
    d = summary.decision
    n = d.numbers
    if n.net_return and n.hit_rate and n.sequential and n.mde and n.mde_always_valid:
        h, m, seq = n.hit_rate, n.net_return, n.sequential
        c.print(f"hit rate diff {_num(h.estimate, True)}{_ci([h.lower, h.upper], True)}"
                f" p={_num(h.p_value)}; net return diff {_num(m.estimate)}"
                f"{_ci([m.lower, m.upper])} p={_num(m.p_value)} (Welch)")
        c.print(f"always-valid p={_num(seq.p_value)}, confidence sequence"
                f"{_ci([seq.lower, seq.upper])}; MDE (80% power) fixed-n / always-valid: "
                f"net return {_num(n.mde['net_return'])} / "
                f"{_num(n.mde_always_valid['net_return'])}, hit rate "
                f"{_num(n.mde['hit_rate'], True)} / "
                f"{_num(n.mde_always_valid['hit_rate'], True)}")
    srm = n.srm
    c.print(f"sample ratio: p={_num(srm.p_value if srm else None)}"
            f"{' [red]MISMATCH[/]' if srm and srm.mismatch else ''}")
    c.print(f"[bold]split decision: {d.action}[/] — {d.reason}")
    p = summary.paired_decision
    if p and p.numbers.paired and p.numbers.mcnemar and p.numbers.sequential:
        pn, seq = p.numbers.paired, p.numbers.sequential
        c.print(f"paired: n={pn.n}, McNemar p={_num(p.numbers.mcnemar.p_value)}, "
                f"mean diff {_num(pn.mean_diff)}, always-valid "
                f"p={_num(seq.p_value)}{_ci([seq.lower, seq.upper])} ({seq.basis})")
        c.print(f"[bold]paired decision: {p.action}[/] — {p.reason}")
    days = summary.days_to_decision
    c.print(f"days to a decision: split {days.split or 'not yet'}, "
            f"paired {days.paired or ('not yet' if p else '-')}")
