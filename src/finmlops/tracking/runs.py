"""Training and evaluation runs: params, per-fold and aggregate metrics, the model's files.

The ONNX model is logged as plain artifacts (``model/model.onnx``, ``model/model.json``,
``model/signature.json``) rather than with ``mlflow.onnx.log_model``: that API needs the fluent
global run state (which would couple homes in one process), writes an environment spec and
MLmodel that serving never reads, and the registry only needs a source URI. Serving loads the
ONNX file with ONNX Runtime directly: no pickles anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finmlops.config import Settings, public_dict
from finmlops.tracking._client import configure, translate

if TYPE_CHECKING:
    from finmlops.models import TrainedVariant

KIND_TAG = "finmlops.kind"
TRAINING = "training"
_BATCH_PARAMS = 100
_BATCH_METRICS = 1000
_MAX_PARAM_VALUE = 6000
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


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


def onnx_signature(model_path: Path) -> dict[str, Any]:
    """The graph's V2 tensor signature (names, datatypes, shapes; symbolic dims as -1)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    types = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.DOUBLE: "FP64",
             onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT32: "INT32",
             onnx.TensorProto.BOOL: "BOOL"}

    def describe(values: Iterable[Any]) -> list[dict[str, Any]]:
        out = []
        for v in values:
            tensor = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            out.append({"name": v.name, "datatype": types.get(tensor.elem_type, "BYTES"),
                        "shape": shape})
        return out

    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    return {"inputs": describe(inputs), "outputs": describe(model.graph.output)}


def _metrics(values: Mapping[str, Any], prefix: str = "", step: int = 0,
             ts: int | None = None) -> list[Any]:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000) if ts is None else ts
    out = []
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isinf(number):
            number = math.copysign(1.7976931348623157e308, number)
        out.append(Metric(metric_key(f"{prefix}{key}"), number, ts, step))
    return out


def _log_batch(client: Any, run_id: str, params: Mapping[str, str] | None = None,
               metrics: list[Any] | None = None) -> None:
    from mlflow.entities import Param

    items = [Param(metric_key(k), v[:_MAX_PARAM_VALUE]) for k, v in (params or {}).items()]
    for i in range(0, len(items), _BATCH_PARAMS):
        client.log_batch(run_id, params=items[i:i + _BATCH_PARAMS])
    metrics = metrics or []
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + _BATCH_METRICS])


@translate
def log_training(settings: Settings, trained: TrainedVariant, config: Mapping[str, Any]) -> str:
    """Log one variant's training as one finished run; returns its run id.

    Params: the public config flattened, the variant's settings, dataset version, git commit
    and seed. Metrics: per fold (``fold.<name>``, step = fold index), aggregate, and the naive
    baselines (``naive.<baseline>.<name>``). Artifacts: ``model/`` (ONNX, model.json,
    signature.json), ``features.json`` and ``oos/<file>.parquet``.
    """
    tracker = configure(settings)
    client = tracker.client
    variant_settings = trained.settings.model_dump(mode="json")
    chash = config_hash(settings, variant_settings)
    commit = git_commit()
    tags = {
        "mlflow.runName": trained.variant,
        KIND_TAG: TRAINING,
        "variant": trained.variant,
        "data_version": trained.data_version,
        "weights_hash": trained.weights_hash,
        "config_hash": chash,
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
    }
    run = client.create_run(tracker.experiment_id, run_name=trained.variant, tags=tags)
    run_id: str = run.info.run_id
    try:
        params = flatten(config)
        params.update(flatten(variant_settings, "variant."))
        params.update({"variant": trained.variant, "data_version": trained.data_version,
                       "git_commit": commit, "seed": str(settings.train.seed),
                       "n_features": str(len(trained.feature_names))})
        ts = int(time.time() * 1000)
        metrics = _metrics(trained.metrics, ts=ts)
        for i, fold in enumerate(trained.fold_metrics):
            metrics += _metrics(fold, "fold.", step=i, ts=ts)
        for name, values in trained.baselines.items():
            metrics += _metrics(values, f"naive.{name}.", ts=ts)
        metrics += _metrics({"train_seconds": trained.seconds, "folds": len(trained.fold_metrics)},
                            ts=ts)
        _log_batch(client, run_id, params, metrics)
        _log_model_files(client, run_id, trained)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _log_model_files(client: Any, run_id: str, trained: TrainedVariant) -> None:
    model_dir = Path(trained.model_dir)
    client.log_artifacts(run_id, str(model_dir), "model")
    spec: dict[str, Any] = {"variant": trained.variant, "feature_names": trained.feature_names,
                            "window": trained.settings.window,
                            "feature_set": trained.settings.features}
    model_json = model_dir / "model.json"
    if model_json.is_file():
        meta = json.loads(model_json.read_text(encoding="utf-8"))
        spec.update({k: meta[k] for k in ("window", "horizon", "target", "input_name",
                                          "output_name") if k in meta})
    with tempfile.TemporaryDirectory(prefix="finmlops-") as tmp:
        onnx_path = model_dir / "model.onnx"
        if onnx_path.is_file():
            sig = Path(tmp) / "signature.json"
            sig.write_text(json.dumps(onnx_signature(onnx_path), indent=2), "utf-8")
            client.log_artifact(run_id, str(sig), "model")
        features = Path(tmp) / "features.json"
        features.write_text(json.dumps(spec, indent=2, sort_keys=True), "utf-8")
        client.log_artifact(run_id, str(features))
    oos = Path(trained.oos_path)
    if oos.is_file():
        client.log_artifact(run_id, str(oos), "oos")


def log_trained_variants(settings: Settings, trained: Iterable[TrainedVariant]) -> dict[str, str]:
    """For the train stage: one run per variant, returns ``{variant: run_id}``.

    A variant whose identical training (same weights hash, data version and configuration) is
    already a finished run keeps that run, so rerunning a cached pipeline adds no duplicates.
    """
    config = public_dict(settings)
    out: dict[str, str] = {}
    for t in trained:
        existing = find_training_run(settings, t)
        out[t.variant] = existing or log_training(settings, t, config)
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
def log_evaluation(settings: Settings, run_id: str, metrics: Mapping[str, float],
                   artifacts: Mapping[str, Path] | None = None, key: str | None = None) -> bool:
    """Add evaluation metrics to a training run; ``artifacts`` maps a run folder to a file or
    directory to put there (e.g. ``{"evaluation": Path("evaluation.json")}``).

    With ``key`` (a digest of what was evaluated), logging the same evaluation twice is a
    no-op; returns whether anything was logged.
    """
    tracker = configure(settings)
    client = tracker.client
    run = client.get_run(run_id)  # a clear not-found error before logging anything
    if key is not None and run.data.tags.get("evaluation_key") == key:
        return False
    _log_batch(client, run_id, metrics=_metrics(metrics))
    for folder, path in (artifacts or {}).items():
        path = Path(path)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), folder or None)
        else:
            client.log_artifact(run_id, str(path), folder or None)
    client.set_tag(run_id, "evaluated", "true")
    if key is not None:
        client.set_tag(run_id, "evaluation_key", key)
    return True


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
