"""Training runs: params, per-fold, per-epoch and aggregate metrics, the dataset, the model.

A training run is opened before the variant trains (:func:`training_run`), so its duration is
the training's, and finished once the result is logged into it. The model is an MLflow model
(ONNX flavor + pyfunc, signature, input example; :mod:`finmlops.tracking.logged_model`) logged
as the run's ``LoggedModel``; the run keeps ``features.json`` and ``oos/oos.parquet`` (stored
once). The evaluate stage adds its figures (:mod:`finmlops.tracking.evaluations`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmlops.config import Settings, VariantSettings, public_dict
from finmlops.contracts import CARD, ModelCard, TrainedVariant
from finmlops.tracking._client import Tracker, configure, translate
from finmlops.tracking.datasets import DatasetRef, dataset_input
from finmlops.tracking.logged_model import log_model

KIND_TAG = "finmlops.kind"
TRAINING = "training"
_BATCH_PARAMS = 100
_BATCH_METRICS = 1000
_MAX_PARAM_VALUE = 6000
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")
_MAX_FLOAT = 1.7976931348623157e308



def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings to dotted keys with string values (lists and nulls as JSON)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


def metric_key(name: str) -> str:
    """A metric or param name MLflow accepts (it rejects e.g. ``[`` or ``%``)."""
    return _BAD_KEY_CHARS.sub("_", name)[:250]


def config_hash(settings: Settings, variant_settings: Mapping[str, Any]) -> str:
    """What makes one trial distinct for the deflated Sharpe ratio: model, features, training
    scheme and trading rule (not where files live or how many threads ran)."""
    config = public_dict(settings)
    train = {k: v for k, v in config["train"].items() if k not in ("variants", "torch_threads")}
    key = {"variant": dict(variant_settings), "features": config["features"], "train": train,
           "evaluation": config["evaluation"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.cache
def git_commit() -> str:
    """The commit of the code that ran, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else "unknown"


def metrics_of(values: Mapping[str, Any], prefix: str = "", step: int = 0,
               ts: int | None = None, *, model_id: str | None = None,
               dataset_name: str | None = None, dataset_digest: str | None = None) -> list[Any]:
    """MLflow metrics of the numeric ``values`` (others skipped, infinities clipped),
    optionally attached to a logged model and the dataset they were computed on."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000) if ts is None else ts
    link = {"model_id": model_id, "dataset_name": dataset_name, "dataset_digest": dataset_digest}
    out = []
    for key, value in values.items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isinf(number):
            number = math.copysign(_MAX_FLOAT, number)
        out.append(Metric(metric_key(f"{prefix}{key}"), number, ts, step, **link))
    return out


def log_batch(client: Any, run_id: str, params: Mapping[str, str] | None = None,
               metrics: list[Any] | None = None) -> None:
    from mlflow.entities import Param

    items = [Param(metric_key(k), v[:_MAX_PARAM_VALUE]) for k, v in (params or {}).items()]
    for i in range(0, len(items), _BATCH_PARAMS):
        client.log_batch(run_id, params=items[i:i + _BATCH_PARAMS])
    metrics = metrics or []
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH_METRICS])


def _end(client: Any, run_id: str, error: BaseException | None) -> None:
    status = ("FINISHED" if error is None else
              "KILLED" if isinstance(error, KeyboardInterrupt | SystemExit) else "FAILED")
    client.set_terminated(run_id, status)


@translate
def start_training_run(settings: Settings, variant: str, data_version: str, *,
                       config: Mapping[str, Any] | None = None,
                       dataset: DatasetRef | None = None,
                       variant_settings: VariantSettings | None = None) -> str:
    """Open (status RUNNING) the run of ``variant``'s training on ``data_version``; returns its
    id. Records what is known before training: tags, params and the dataset input.
    ``variant_settings`` defaults to ``settings.train.variants[variant]``."""
    tracker = configure(settings)
    client = tracker.client
    chosen = variant_settings or settings.train.variants[variant]
    variant_settings_json = chosen.model_dump(mode="json")
    commit = git_commit()
    tags = {
        "mlflow.runName": variant,
        KIND_TAG: TRAINING,
        "variant": variant,
        "data_version": data_version,
        "config_hash": config_hash(settings, variant_settings_json),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
    }
    run = client.create_run(tracker.experiment_id, run_name=variant, tags=tags)
    run_id: str = run.info.run_id
    try:
        params = flatten(public_dict(settings) if config is None else config)
        params.update(flatten(variant_settings_json, "variant."))
        params.update({"variant": variant, "data_version": data_version,
                       "git_commit": commit, "seed": str(settings.train.seed)})
        log_batch(client, run_id, params)
        if dataset is not None:
            client.log_inputs(run_id, datasets=[dataset_input(dataset)])
    except BaseException as exc:
        _end(client, run_id, exc)
        raise
    return run_id


def _loss_metrics(trained: TrainedVariant, ts: int) -> list[Any]:
    """Per-epoch losses as step metrics (step = epoch): ``train_loss`` / ``val_loss`` of the
    deployable fit, ``fold_NN/train_loss`` / ``fold_NN/val_loss`` of walk-forward fold NN."""
    from mlflow.entities import Metric

    fits = trained.losses
    names = [f"fold_{int(f.get('fold', i)):02d}/" for i, f in enumerate(trained.fold_metrics)]
    if len(fits) == len(names) + 1:
        names.append("")  # the deployable fit comes last
    out = []
    for prefix, fit in zip(names, fits, strict=False):
        for kind in ("train", "val"):
            for epoch, value in enumerate(fit.get(kind) or [], start=1):
                if value is not None and math.isfinite(value):
                    out.append(Metric(metric_key(f"{prefix}{kind}_loss"), float(value), ts,
                                      epoch))
    return out


def _log_results(settings: Settings, tracker: Tracker, run_id: str, trained: TrainedVariant,
                 dataset: DatasetRef | None) -> None:
    client = tracker.client
    chash = config_hash(settings, trained.settings.model_dump(mode="json"))
    client.set_tag(run_id, "weights_hash", trained.weights_hash)
    ts = int(time.time() * 1000)
    metrics = metrics_of(trained.metrics, ts=ts)
    for i, fold in enumerate(trained.fold_metrics):
        metrics += metrics_of(fold, "fold.", step=i, ts=ts)
    for name, values in trained.baselines.items():
        metrics += metrics_of(values, f"naive.{name}.", ts=ts)
    metrics += metrics_of({"train_seconds": trained.seconds, "folds": len(trained.fold_metrics)},
                        ts=ts)
    metrics += _loss_metrics(trained, ts)
    log_batch(client, run_id, {"n_features": str(len(trained.feature_names))}, metrics)
    log_model(tracker, run_id, trained, dataset=dataset,
              tags={"variant": trained.variant, "data_version": trained.data_version,
                    "weights_hash": trained.weights_hash, "config_hash": chash})
    _log_run_files(client, run_id, trained)


@translate
def log_training(settings: Settings, trained: TrainedVariant, config: Mapping[str, Any], *,
                 run_id: str | None = None, dataset: DatasetRef | None = None) -> str:
    """Log one variant's training and finish its run; returns the run id.

    ``run_id`` is a run :func:`start_training_run` opened before training; without it the run
    is opened now (a result reused from the cache, or logged by the register stage).
    Params: the public config flattened, the variant's settings, dataset version, git commit
    and seed. Metrics: aggregate, per fold (``fold.<name>``, step = fold index), the naive
    baselines (``naive.<baseline>.<name>``) and per-epoch losses (step = epoch). The model is
    the run's ``LoggedModel``; artifacts ``features.json`` and ``oos/oos.parquet``.
    """
    tracker = configure(settings)
    if run_id is None:
        run_id = start_training_run(settings, trained.variant, trained.data_version,
                                    config=config, dataset=dataset,
                                    variant_settings=trained.settings)
    error: BaseException | None = None
    try:
        _log_results(settings, tracker, run_id, trained, dataset)
    except BaseException as exc:
        error = exc
        raise
    finally:
        _end(tracker.client, run_id, error)
    return run_id


def _log_run_files(client: Any, run_id: str, trained: TrainedVariant) -> None:
    """``features.json`` (what the model reads) and ``oos/oos.parquet``, each stored once."""
    model_dir = Path(trained.model_dir)
    spec: dict[str, Any] = {"variant": trained.variant, "feature_names": trained.feature_names,
                            "window": trained.settings.window,
                            "feature_set": trained.settings.features}
    if (model_dir / CARD).is_file():
        card = ModelCard.read(model_dir)
        spec.update(window=card.window, horizon=card.horizon, target=card.target,
                    input_name=card.input_name, output_name=card.output_name)
    with tempfile.TemporaryDirectory(prefix="finmlops-") as tmp:
        features = Path(tmp) / "features.json"
        features.write_text(json.dumps(spec, indent=2, sort_keys=True), "utf-8")
        client.log_artifact(run_id, str(features))
    oos = Path(trained.oos_path)
    if oos.is_file():
        client.log_artifact(run_id, str(oos), "oos")


@dataclass(frozen=True)
class TrainingRun:
    """A run opened before training; :meth:`log` records the result and finishes it."""

    settings: Settings
    run_id: str
    config: Mapping[str, Any]
    dataset: DatasetRef | None

    def log(self, trained: TrainedVariant) -> str:
        return log_training(self.settings, trained, self.config, run_id=self.run_id,
                            dataset=self.dataset)


@contextlib.contextmanager
def training_run(settings: Settings, variant: str, data_version: str, *,
                 config: Mapping[str, Any] | None = None,
                 dataset: DatasetRef | None = None) -> Iterator[TrainingRun]:
    """Open ``variant``'s run for the duration of its training: ``with training_run(...) as
    run: ...train...; run.log(trained)``. An exception ends the run FAILED (KILLED on Ctrl-C);
    leaving the block without :meth:`TrainingRun.log` ends it FAILED too."""
    config = public_dict(settings) if config is None else config
    run = TrainingRun(settings, start_training_run(settings, variant, data_version,
                                                   config=config, dataset=dataset),
                      config, dataset)
    client = configure(settings).client
    try:
        yield run
    except BaseException as exc:
        with contextlib.suppress(Exception):
            _end(client, run.run_id, exc)
        raise
    if client.get_run(run.run_id).info.status == "RUNNING":
        _end(client, run.run_id, RuntimeError("training ended without a logged result"))


def log_trained_variants(settings: Settings, trained: Iterable[TrainedVariant],
                         dataset: DatasetRef | None = None) -> dict[str, str]:
    """For results reused from the cache: one run per variant, returns ``{variant: run_id}``.

    A variant whose identical training (same weights hash, data version and configuration) is
    already a finished run keeps that run, so rerunning a cached pipeline adds no duplicates.
    """
    config = public_dict(settings)
    out: dict[str, str] = {}
    for t in trained:
        existing = find_training_run(settings, t)
        out[t.variant] = existing or log_training(settings, t, config, dataset=dataset)
    return out


@translate
def find_training_run(settings: Settings, trained: TrainedVariant) -> str | None:
    """The id of a finished run that logged exactly this training, if there is one."""
    tracker = configure(settings)
    chash = config_hash(settings, trained.settings.model_dump(mode="json"))
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=(f"tags.`{KIND_TAG}` = '{TRAINING}' and attributes.status = 'FINISHED'"
                       f" and tags.weights_hash = '{trained.weights_hash}'"
                       f" and tags.data_version = '{trained.data_version}'"
                       f" and tags.config_hash = '{chash}'"
                       f" and tags.variant = '{trained.variant}'"),
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


@translate
def log_artifacts(settings: Settings, run_id: str, artifacts: Mapping[str, Path]) -> None:
    """Attach files (e.g. the HTML report) to an existing run, by run folder."""
    client = configure(settings).client
    for folder, path in artifacts.items():
        client.log_artifact(run_id, str(path), folder or None)


@translate
def count_trials(settings: Settings) -> int:
    """How many distinct configurations were evaluated in this experiment (finished training
    runs, one per config hash): the number of trials the deflated Sharpe ratio corrects for."""
    tracker = configure(settings)
    seen: set[str] = set()
    token = None
    while True:
        page = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = '{TRAINING}' and attributes.status = 'FINISHED'",
            max_results=1000, page_token=token,
        )
        for run in page:
            seen.add(run.data.tags.get("config_hash") or run.info.run_id)
        token = page.token
        if not token:
            return len(seen)
