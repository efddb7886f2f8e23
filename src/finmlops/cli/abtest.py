"""``finmlops abtest replay|feedback|status|decide``: drive, answer, watch and decide the A/B
experiment.

``feedback`` posts the realised forward return of (ticker, as-of date) to a running service by
routing key (what the daily CronWorkflow runs). ``status`` and ``decide`` read the prediction
log (``--log``; default: the latest replay's log from the run state, else ``serve.log_path``)
or Prometheus (``--source prometheus``). ``decide --apply`` moves the MLflow aliases and, given
``--url``, the running service's weights.
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, print_json, settings_from

ABTEST_STAGE = ("abtest", "finmlops.pipeline._abtest:run",
                "replay the held-out days through the service, then decide the A/B test")

UrlOption = Annotated[str | None, typer.Option(
    "--url", help="Base URL of a running V2 service (default: start one in-process).")]
SourceOption = Annotated[str, typer.Option(
    "--source", help="Where the statistics come from: log or prometheus.")]
PromOption = Annotated[str | None, typer.Option(
    "--prometheus-url", help="Prometheus base URL (with --source prometheus).")]
FEEDBACK_BACKOFF_S = (0.5, 1.0, 2.0)
"""Waits before the retries of a feedback post that met a 5xx or a transport error."""

LogOption = Annotated[Path | None, typer.Option(
    "--log", help="Prediction log (SQLite) to read instead of the default.")]


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="abtest", no_args_is_help=True,
                        help="Replay traffic, watch and decide the A/B experiment.")

    @group.command("replay")
    def replay_cmd(
        ctx: typer.Context,
        url: UrlOption = None,
        start: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD).")] = None,
        end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Replay held-out days as live traffic (one request per day and ticker, then feedback)."""
        overrides = {"abtest.replay_start": _date(start, "--start"),
                     "abtest.replay_end": _date(end, "--end")}
        settings = settings_from(ctx, overrides)
        if url is None:
            state = _run_stage(settings, as_json)
            summary = _load_json(Path(state["abtest"]["path"]))
            if as_json:
                print_json(summary)
                return
            _print_status(summary)
            return
        result = _replay_remote(settings, url, as_json)
        if as_json:
            print_json(result)
            return
        console().print(f"replayed {result['requests']} requests over {result['days']} days "
                        f"to {url} ({result['feedback']} outcomes); served {result['served']}")

    @group.command("feedback")
    def feedback_cmd(
        ctx: typer.Context,
        url: Annotated[str, typer.Option(
            "--url", help="Base URL of the running V2 service.")],
        date: Annotated[str | None, typer.Option(
            "--date", help="As-of date (YYYY-MM-DD); default: each ticker's newest date "
                           "with a known forward return.")] = None,
        tickers: Annotated[str | None, typer.Option(
            "--tickers", help="Comma-separated tickers (default: features.target).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Post realised forward returns by routing key (TICKER:DATE) to /v2/feedback."""
        settings = settings_from(ctx)
        out = _post_realised(settings, url, _date(date, "--date"), tickers)
        if as_json:
            print_json(out)
            return
        c = console()
        for o in out["posted"]:
            c.print(f"posted {o['routing_key']}: realized_return {o['realized_return']:+.6f} "
                    f"(close {o['date']} -> {o['until']}, direction {o['direction']})")
        a = out["answer"]
        unknown = ", ".join(a.get("unknown") or []) or "none"
        c.print(f"{out['url']}: accepted {a.get('accepted')}, duplicates "
                f"{a.get('duplicates')}, unknown {unknown}")

    @group.command("status")
    def status_cmd(
        ctx: typer.Context,
        source: SourceOption = "log",
        prometheus_url: PromOption = None,
        log: LogOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Per-arm numbers with CIs, comparisons, the sequential test, MDE and split vs paired."""
        settings = settings_from(ctx)
        summary = _analyse(settings, source, prometheus_url, log)
        if as_json:
            print_json(summary)
            return
        _print_status(summary)

    @group.command("decide")
    def decide_cmd(
        ctx: typer.Context,
        apply: Annotated[bool, typer.Option(
            "--apply", help="Act on it: promote or roll back in MLflow (and --url weights).")]
        = False,
        url: Annotated[str | None, typer.Option(
            "--url", help="Running service whose weights --apply updates.")] = None,
        test: Annotated[str, typer.Option(
            "--test", help="auto (paired when shadow data exist), split or paired.")] = "auto",
        actor: Annotated[str | None, typer.Option(help="Who applies it (default: $USER).")]
        = None,
        source: SourceOption = "log",
        prometheus_url: PromOption = None,
        log: LogOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Print the decision and its numbers; with --apply, carry it out."""
        from finmlops.errors import ConfigError

        if test not in ("auto", "split", "paired"):
            raise ConfigError(f"--test must be auto, split or paired, not {test!r}")
        settings = settings_from(ctx)
        summary = _analyse(settings, source, prometheus_url, log)
        decision = _chosen(summary, test)
        out: dict[str, Any] = {"test": decision["test"], "decision": decision}
        if apply:
            out["applied"] = _apply(settings, summary, decision, actor or _user(), url)
        if as_json:
            print_json(out)
            return
        c = console()
        c.print(f"[bold]{decision['action']}[/] ({decision['test']} test): {decision['reason']}")
        seq = decision["numbers"].get("sequential", {})
        if seq:
            c.print(f"  always-valid p={_num(seq.get('p_value'))}, CS "
                    f"[{_num(seq.get('lower'))}, {_num(seq.get('upper'))}]")
        if apply:
            c.print(f"  applied: {out['applied']}")

    app.add_typer(group)


def _date(text: str | None, flag: str) -> dt.date | None:
    from finmlops.errors import ConfigError

    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} must be a date like 2020-01-31, not {text!r}") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _load_json(path: Path) -> dict[str, Any]:
    import json

    from finmlops.errors import StoreError

    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    return data


def _run_stage(settings: Any, as_json: bool) -> dict[str, Any]:

    from finmlops.cli._progress import ConsoleReporter
    from finmlops.pipeline import Stage, run_stages

    out = console(stderr=as_json)
    with ConsoleReporter(out) as reporter:
        return run_stages(settings, [Stage(*ABTEST_STAGE)], reporter)


def _replay_remote(settings: Any, url: str, as_json: bool) -> dict[str, Any]:
    """Replay against a running service: the input signature comes from the trained models
    in the run state, else from the settings (longest window, full feature list)."""
    import uuid

    from finmlops.abtest import replay
    from finmlops.data import read_bars
    from finmlops.features import feature_names
    from finmlops.pipeline import load_state
    from finmlops.pipeline._abtest import (
        build_replay_input,
        input_signature,
        model_dirs,
        replay_period,
    )

    state = load_state(settings)
    try:
        default = settings.experiment.default or settings.experiment.candidates[0].name
        window, names = input_signature(model_dirs(settings, state)[default])
    except Exception:
        window = max(settings.train.variants[c.name].window
                     for c in settings.experiment.candidates)
        names = feature_names("full", settings.features.context)
    start, end = replay_period(settings)
    data = build_replay_input(settings, read_bars(settings, state.get("dataset_version")),
                              window, names, start, end)
    token = settings.serve.api_token
    from rich.progress import Progress

    with Progress(console=console(), transient=True, disable=as_json) as bar:
        task = bar.add_task("replaying", total=len(set(data.dates)))

        def progress(done: int, total: int, day: str) -> None:
            bar.update(task, completed=done, description=f"replaying {day}")

        result = replay(url, data, experiment=settings.experiment.name,
                        token=token.get_secret_value() if token is not None else None,
                        id_prefix=f"replay-{uuid.uuid4().hex[:8]}", on_progress=progress)
    return result.summary()


def _post_realised(settings: Any, url: str, day: dt.date | None,
                   tickers: str | None) -> dict[str, Any]:
    """Compute the outcomes from the newest dataset version and post them in one batch."""
    from finmlops.abtest import realised_outcomes
    from finmlops.data import get_manifest, read_bars
    from finmlops.errors import ConfigError

    names = list(settings.features.target) if tickers is None else [
        t.strip().upper() for t in tickers.split(",") if t.strip()]
    if not names:
        raise ConfigError("--tickers names no ticker")
    manifest = get_manifest(settings)
    bars = read_bars(settings, manifest.version, names)
    # One-day outcomes whatever the label horizon: each served signal is a one-day position
    # (the same outcome the replay posts).
    outcomes = realised_outcomes(bars, names, day, horizon=1)
    answer = _post_feedback(settings, url, [o.payload() for o in outcomes])
    return {"url": url, "dataset_version": manifest.version,
            "posted": [o.to_json() for o in outcomes], "answer": answer}


def _post_feedback(settings: Any, url: str, outcomes: list[dict[str, Any]]) -> Any:
    """POST ``{"outcomes": [...]}``; retried on 5xx and transport errors (feedback is
    idempotent, so a retry after a lost answer counts nothing twice)."""
    import time

    import httpx

    from finmlops.abtest.replay import _raise_for
    from finmlops.errors import SourceError

    token = settings.serve.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    target = f"{url.rstrip('/')}/v2/feedback"
    waits = [*FEEDBACK_BACKOFF_S, None]
    with httpx.Client(timeout=30.0, trust_env=False) as http:
        for wait in waits:
            try:
                resp = http.post(target, json={"outcomes": outcomes}, headers=headers)
            except httpx.TransportError as exc:
                if wait is None:
                    raise SourceError(f"service at {url} is unreachable: {exc}") from None
                time.sleep(wait)
                continue
            if resp.status_code >= 500 and wait is not None:
                time.sleep(wait)
                continue
            _raise_for(resp, f"feedback to {url}")
            try:
                return resp.json()
            except ValueError:
                raise SourceError(f"feedback to {url} answered {resp.status_code} with "
                                  f"non-JSON: {resp.text[:200]}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def default_log(settings: Any) -> Path:
    """The latest replay's log (run state) when there is one, else ``serve.log_path``."""
    from finmlops.pipeline import load_state

    if settings.serve.log_path is None:
        path = (load_state(settings).get("abtest") or {}).get("path")
        if path and (Path(path).parent / "predictions.db").is_file():
            return Path(path).parent / "predictions.db"
    return Path(settings.prediction_log)


def _analyse(settings: Any, source: str, prometheus_url: str | None,
             log: Path | None) -> dict[str, Any]:
    from finmlops import abtest
    from finmlops.errors import ConfigError

    name = settings.experiment.name
    if source == "prometheus":
        if not prometheus_url:
            raise ConfigError("--source prometheus needs --prometheus-url")
        snap = abtest.from_prometheus(prometheus_url, name)
        summary = abtest.analyse_snapshot(snap, settings)
        summary["source"] = {"kind": "prometheus", "url": prometheus_url}
        return summary
    if source != "log":
        raise ConfigError(f"--source must be log or prometheus, not {source!r}")
    path = log or default_log(settings)
    summary = abtest.analyse_outcomes(abtest.read_outcomes(path, name),
                                      abtest.served_counts(path, name), settings)
    summary["source"] = {"kind": "log", "path": str(path)}
    return summary


def _chosen(summary: dict[str, Any], test: str) -> dict[str, Any]:
    from finmlops.errors import StageError

    paired: dict[str, Any] | None = summary.get("paired_decision")
    if paired is None:
        if test == "paired":
            raise StageError("no paired outcomes: run the experiment with "
                             "experiment.shadow: true")
        return {**summary["decision"], "test": "split"}
    if test == "split":
        return {**summary["decision"], "test": "split"}
    return {**paired, "test": "paired"}


def _apply(settings: Any, summary: dict[str, Any], decision: dict[str, Any], actor: str,
           url: str | None) -> dict[str, Any]:
    """Promote or roll back in MLflow; with ``url``, set the service's weights to match."""
    from finmlops import tracking
    from finmlops.abtest import weights_after

    action = decision["action"]
    if action not in ("promote", "rollback"):
        return {"action": action, "changed": False, "note": "nothing to apply"}
    chal, ref = summary["challenger"], summary["reference"]
    # Each arm is served by its variant alias (``finmlops serve``'s default), so act on the
    # versions the arms stand for, never on whatever the ``challenger`` alias (the newest
    # registration, e.g. a retrained baseline) happens to point at.
    versions = {arm: tracking.resolve(settings, arm).version for arm in (chal, ref)}
    record = {"action": action, "test": decision["test"], "reason": decision["reason"],
              "experiment": summary["experiment"], "challenger": chal, "reference": ref,
              "versions": versions, "sequential": decision["numbers"].get("sequential")}
    why = {"actor": actor, "reason": decision["reason"], "decision": record}
    result: dict[str, Any]
    if action == "promote":
        result = dict(tracking.promote(settings, version=versions[chal], **why))
    else:
        # A challenger promoted earlier and now shown worse: the reference arm's version is
        # champion again (the weights below send it all traffic), then the loser is rejected.
        from finmlops.errors import ModelNotFoundError

        try:
            champion: str | None = tracking.resolve(settings, tracking.CHAMPION).version
        except ModelNotFoundError:
            champion = None
        restored = None
        if champion == versions[chal]:
            restored = tracking.promote(settings, version=versions[ref], **why)
        result = dict(tracking.rollback(settings, version=versions[chal], **why))
        if restored is not None:
            result.update(restored=restored, changed=True, champion=restored["champion"])
    if url is not None:
        result["weights"] = _set_weights(settings, url, weights_after(
            action, settings.experiment, chal, ref))
    return result


def _set_weights(settings: Any, url: str, candidates: list[dict[str, Any]]) -> Any:
    import httpx

    from finmlops.errors import SourceError

    token = settings.serve.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        resp = httpx.put(f"{url.rstrip('/')}/admin/experiment", json={"candidates": candidates},
                         headers=headers, timeout=10.0, trust_env=False)
    except httpx.HTTPError as exc:
        raise SourceError(f"service at {url} is unreachable: {exc}") from None
    if resp.status_code != 200:
        raise SourceError(f"setting weights at {url} failed ({resp.status_code}): {resp.text}")
    return resp.json()


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


def _print_status(summary: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    table = Table(title=f"experiment {summary['experiment']}: {summary['challenger']} vs "
                        f"{summary['reference']} on {summary['metric']}", title_justify="left")
    for col in ("arm", "n", "hit rate [CI]", "mean net return [CI]", "share / target"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, a in summary["arms"].items():
        table.add_row(arm, str(a.get("n", 0)),
                      _num(a.get("hit_rate"), True) + _ci(a.get("hit_rate_ci"), True),
                      _num(a.get("mean_return")) + _ci(a.get("mean_return_ci")),
                      f"{_num(a.get('share'), True)} / {_num(a.get('target_share'), True)}")
    c.print(table)
    d = summary["decision"]
    n = d["numbers"]
    if "net_return" in n:
        h, m, seq = n["hit_rate"], n["net_return"], n["sequential"]
        c.print(f"hit rate diff {_num(h['estimate'], True)}{_ci([h['lower'], h['upper']], True)}"
                f" p={_num(h['p_value'])}; net return diff {_num(m['estimate'])}"
                f"{_ci([m['lower'], m['upper']])} p={_num(m['p_value'])} (Welch)")
        c.print(f"always-valid p={_num(seq['p_value'])}, confidence sequence"
                f"{_ci([seq['lower'], seq['upper']])}; MDE (80% power) fixed-n / always-valid: "
                f"net return {_num(n['mde']['net_return'])} / "
                f"{_num(n['mde_always_valid']['net_return'])}, hit rate "
                f"{_num(n['mde']['hit_rate'], True)} / "
                f"{_num(n['mde_always_valid']['hit_rate'], True)}")
    srm = n.get("srm", {})
    c.print(f"sample ratio: p={_num(srm.get('p_value'))}"
            f"{' [red]MISMATCH[/]' if srm.get('mismatch') else ''}")
    c.print(f"[bold]split decision: {d['action']}[/] — {d['reason']}")
    p = summary.get("paired_decision")
    if p:
        pn = p["numbers"]
        seq = pn["sequential"]
        c.print(f"paired: n={pn['paired']['n']}, McNemar p={_num(pn['mcnemar']['p_value'])}, "
                f"mean diff {_num(pn['paired']['mean_diff'])}, always-valid "
                f"p={_num(seq['p_value'])}{_ci([seq['lower'], seq['upper']])} ({seq['basis']})")
        c.print(f"[bold]paired decision: {p['action']}[/] — {p['reason']}")
    days = summary.get("days_to_decision")
    if days:
        c.print(f"days to a decision: split {days['split'] or 'not yet'}, "
                f"paired {days['paired'] or ('not yet' if p else '-')}")
