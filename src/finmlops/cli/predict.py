"""``finmlops predict``: the day's signal of every target ticker, scored through the service.

Each (ticker, as-of day) is one V2 request to the experiment with routing key
``TICKER:YYYY-MM-DD``, exactly what the replay and live clients send, so the prediction is
committed in the experiment ledger as experiment traffic (the daily job's ``feedback`` step
later records its outcome by that key). The answers — arm, registered model version,
probability and the position the evaluation rule takes — are printed and, with the root
``--outputs``, written as ``predictions.json`` (the daily job's artifact).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import JsonOption, console, emit, print_json, settings_from

if TYPE_CHECKING:
    from finmlops.config import Settings


def signal(probability: float, rule: str, threshold: float, dead_band: float) -> str:
    """The position the evaluation rule takes from one probability: ``long``, ``flat`` or
    ``short``; ``hold`` inside the dead band (the previous position stays)."""
    if abs(probability - threshold) <= dead_band and dead_band > 0:
        return "hold"
    if probability > threshold:
        return "long"
    return "short" if rule == "long_short" else "flat"


def predict_days(settings: Settings, url: str, dataset: str | None,
                 since: dt.date | None) -> dict[str, Any]:
    """Score every target ticker's as-of days from ``since`` (default: the newest day only)
    through the experiment at ``url``; returns the predictions document."""
    from finmlops.abtest.client import ServiceClient
    from finmlops.abtest.replay import routing_key
    from finmlops.abtest.replay_input import build_replay_input
    from finmlops.data import get_manifest, read_bars
    from finmlops.errors import StageError
    from finmlops.features import feature_names

    exp = settings.experiment
    manifest = get_manifest(settings, dataset)
    window = max(settings.train.variants[c.name].window for c in exp.candidates)
    names = feature_names("full", settings.features.context)
    ev = settings.evaluation
    with ServiceClient.of(settings, url) as client:
        shape = list(client.metadata(exp.name)["inputs"][0]["shape"])
        if shape[1:] != [window, len(names)]:
            raise StageError(f"the service's {exp.name} takes windows {shape[1:]}, the "
                             f"settings give [{window}, {len(names)}]: deploy the settings "
                             "the models were trained with")
        bars = read_bars(settings, manifest.version)
        newest = max(d.date() for d in bars.loc[bars["ticker"].isin(
            settings.features.target), "date"])
        data = build_replay_input(settings, bars, window, names, since or newest, None)
        rows = []
        for i in sorted(range(len(data.dates)), key=lambda j: (data.dates[j], data.tickers[j])):
            day, ticker = data.dates[i], data.tickers[i]
            key = routing_key(ticker, day)
            body = {"id": f"predict:{key}", "parameters": {"routing_key": key},
                    "inputs": [{"name": "features", "datatype": "FP32",
                                "shape": [1, window, len(names)],
                                "data": data.windows[i].astype(float).ravel().tolist()}]}
            answer = client.infer(exp.name, body, what=f"inference for {key}")
            params = answer.body.get("parameters") or {}
            prob = answer.probability
            if prob is None:
                raise StageError(f"the service answered no probability for {key}")
            rows.append({"ticker": ticker, "date": day.isoformat(), "routing_key": key,
                         "prediction_id": answer.prediction_id, "arm": answer.arm,
                         "model_version": answer.body.get("model_version"),
                         "experiment_version": params.get("experiment_version"),
                         "probability": prob,
                         "signal": signal(prob, ev.rule, ev.threshold, ev.dead_band)})
    return {"dataset_version": manifest.version, "experiment": exp.name,
            "as_of": newest.isoformat(), "since": (since or newest).isoformat(),
            "predictions": rows}


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        ctx: typer.Context,
        url: Annotated[str, typer.Option(
            "--url", help="Base URL of the running V2 service (its experiment).")],
        dataset: Annotated[str | None, typer.Option(
            help="Dataset version (default: the newest).")] = None,
        since: Annotated[str | None, typer.Option(
            help="Also score every as-of day from this one (YYYY-MM-DD; empty or absent: "
                 "the newest day only), e.g. to catch up after an outage.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Score the newest day (or every day --since) of each target ticker through the
        service's experiment, so it is committed in the ledger as experiment traffic."""
        from finmlops.cli._common import date_option

        settings = settings_from(ctx)
        out = predict_days(settings, url, None if dataset in (None, "", "latest") else dataset,
                           date_option(since or None, "--since"))
        emit(ctx, {"predicted": len(out["predictions"]), "predictions.json": out})
        if as_json:
            print_json(out)
            return
        c = console()
        for r in out["predictions"]:
            c.print(f"{r['routing_key']}: {r['signal']} (P(up) {r['probability']:.3f}, arm "
                    f"{r['arm']} v{r['model_version']}, prediction {r['prediction_id']})")
        c.print(f"{len(out['predictions'])} prediction(s) on dataset "
                f"{out['dataset_version'][:12]} committed by {url}")
