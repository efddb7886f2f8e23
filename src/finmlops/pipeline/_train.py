"""Pipeline stage ``train``: walk-forward every variant (or the ones asked for), export the
deployable models, and track each training in MLflow.

Per variant, ``<cache>/<variant>/`` holds ``model.onnx``, ``model.json``, ``input_example.json``
(a few real input windows), ``oos.parquet`` (out-of-sample predictions) and ``result.json``
(metrics, per-epoch losses); the cache key is the dataset version and the feature and train
settings, so an unchanged second run reuses the directories. Training a subset (``finmlops
train --variant NAME``, one workflow pod per variant) writes into the same directories, and the
run state's ``trained`` gains those variants beside the others.

A variant that is trained gets its MLflow run opened before training starts, so the run's
duration is the training's; a variant reused from the cache keeps the run that logged it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import ModelCard, TrainedVariant
from finmlops.errors import ConfigError, StageError
from finmlops.models.stored import is_stored, load_variant, write_variant
from finmlops.pipeline.runner import RunContext, StageResult

TRAIN_FORMAT = 3
"""Bump when training or export changes, so cached models are rebuilt (2: the deployable
refit, the calendar, the out-of-sample drift reference; 3: input example and per-epoch
losses)."""
EXAMPLE_ROWS = 2
"""Input windows kept as the MLflow model's input example: the last ones up to the cutoff."""

OpenRun = Callable[[str], contextlib.AbstractContextManager[Callable[[TrainedVariant], str]]]
"""``open_run(variant)``: a context entered before the variant trains, yielding the function
that logs the trained result into the run it opened."""


def _reference(x: Any, names: list[str], settings: Settings, oos: Any) -> dict[str, Any]:
    """The drift reference: training rows, and the walk-forward out-of-sample predictions up
    to the cutoff (not the deployable model's in-sample ones), calibrated for the service's
    window too."""
    import pandas as pd

    from finmlops.monitoring import DEFAULT_LENGTHS, build_reference

    cutoff = settings.train.cutoff
    before = oos if cutoff is None else oos[oos["date"] <= pd.Timestamp(cutoff)]
    mon = settings.monitoring
    predictions = before["probability"].to_numpy()
    return build_reference(x, names, mon.bins,
                           predictions=predictions if predictions.size else None,
                           lengths=(*DEFAULT_LENGTHS, mon.drift_window_days))


def input_example(samples: Any, until: Any) -> Any:
    """The last :data:`EXAMPLE_ROWS` raw input windows dated up to ``until`` (the model's own
    training period; any windows when none is that early)."""
    import numpy as np

    dates = np.asarray(samples.dates)
    rows = np.flatnonzero(dates <= np.datetime64(until)) if until is not None else np.array([])
    if rows.size == 0:
        rows = np.arange(len(dates))
    return samples.x[rows[-EXAMPLE_ROWS:]]


def card_of(run: Any, settings: Settings, data_version: str, input_names: list[str],
            window: int) -> ModelCard:
    """The model card of a trained :class:`~finmlops.models.walkforward.VariantRun`."""
    from finmlops.models.export import model_card

    cutoff = settings.train.cutoff
    return model_card(
        variant=run.name, target=list(settings.features.target), window=window,
        feature_names=input_names, data_version=data_version, weights_hash=run.weights_hash,
        trained_until=(cutoff or run.trained_until).isoformat(),
        horizon=settings.features.horizon,
        reference=_reference(run.reference_rows, input_names, settings, run.oos))


def chosen_variants(settings: Settings, only: Sequence[str] | None) -> list[str]:
    """The configured variants to train, in configuration order: all of them, or ``only``
    (unknown names are a :class:`ConfigError` listing the configured ones)."""
    configured = list(settings.train.variants)
    if not only:
        return configured
    unknown = [v for v in dict.fromkeys(only) if v not in settings.train.variants]
    if unknown:
        raise ConfigError(f"unknown variant{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; train.variants has: "
                          f"{', '.join(configured)}")
    wanted = set(only)
    return [v for v in configured if v in wanted]


def train_all(ctx: RunContext, features_path: Path, data_version: str,
              only: Sequence[str] | None = None,
              open_run: OpenRun | None = None) -> dict[str, TrainedVariant]:
    """Train (or reuse from the cache) every configured variant, or only those in ``only``;
    each variant that trains does so inside ``open_run(variant)`` (see :data:`OpenRun`).

    The cache key and the input window cover every configured variant either way, so one
    variant trained alone is the same model, in the same directory, as in a full run."""
    settings = ctx.settings
    key = {"format": TRAIN_FORMAT, "dataset_version": data_version,
           "features": settings.features.model_dump(mode="json"),
           "train": settings.train.model_dump(mode="json")}
    base = ctx.cache_dir("train", key)
    variants = settings.train.variants
    chosen = chosen_variants(settings, only)
    todo = [v for v in chosen if not is_stored(base / v)]
    if todo:
        import pandas as pd

        from finmlops.features import feature_names
        from finmlops.models.walkforward import max_window, prepare_samples, train_variant

        if not features_path.is_file():
            raise StageError(f"feature matrix {features_path} is missing: run "
                             "`finmlops run --only features` again")
        names = feature_names("full", settings.features.context)
        window = max_window(variants)
        samples = prepare_samples(pd.read_parquet(features_path), names, window)
        for i, name in enumerate(todo):
            ctx.progress(f"training {name}", i, len(todo))
            with (open_run or _no_run)(name) as log:
                run = train_variant(samples, name, variants[name], settings.train,
                                    context=settings.features.context,
                                    horizon=settings.features.horizon,
                                    dead_band=settings.features.dead_band,
                                    progress=lambda m: ctx.progress(m))
                example = input_example(samples, settings.train.cutoff or run.trained_until)
                card = card_of(run, settings, data_version, names, window)
                log(write_variant(base / name, run, card, data_version, example))
        ctx.progress("trained", len(todo), len(todo))
    return {v: load_variant(base / v) for v in chosen}


def not_improved_lines(trained: dict[str, TrainedVariant]) -> list[str]:
    """Per variant with folds whose validation loss never improved on their starting weights:
    ``baseline: 3/21 folds never improved (2008, 2011, 2020)``."""
    lines = []
    for v, t in trained.items():
        years = [str(int(f["test_year"])) for f in t.fold_metrics if f["improved"] == 0.0]
        if years:
            lines.append(f"{v}: {len(years)}/{len(t.fold_metrics)} folds never improved "
                         f"({', '.join(years)})")
    return lines
@contextlib.contextmanager
def _no_run(variant: str) -> Iterator[Callable[[TrainedVariant], str]]:
    yield lambda trained: ""


def dataset_ref(settings: Settings, data_version: str) -> Any:
    """The :class:`finmlops.tracking.DatasetRef` of a stored dataset version (``None`` when the
    store cannot say: the run is then logged without its dataset)."""
    from finmlops.data import get_manifest
    from finmlops.errors import FinmlopsError
    from finmlops.tracking import DatasetRef

    try:
        manifest = get_manifest(settings, data_version)
    except FinmlopsError:
        return None
    root = settings.store_uri
    if "://" not in root:
        root = Path(root).resolve().as_uri()
    return DatasetRef(
        name="bars-" + "-".join(manifest.tickers), digest=manifest.version,
        source=f"{root.rstrip('/')}/versions/{manifest.version}", rows=manifest.rows,
        tickers=tuple(manifest.tickers), start=manifest.start, end=manifest.end,
        origin=manifest.source)


def run(ctx: RunContext) -> StageResult:
    """Walk-forward + deployable model per variant (option ``variants``: only those); outputs
    ``trained`` for them, which the runner merges into the entries already in the state. An
    entry of a variant no longer configured is dropped (``None`` removes it in the merge)."""
    from finmlops.config import public_dict
    from finmlops.tracking import log_trained_variants, training_run

    # The entries train replaces are not read: an older finmlops may have written them.
    previous = list(ctx.state.get("trained") or {})
    state = ctx.run_state("dataset_version", "features")
    data_version = state.need_dataset_version()
    features = state.need_features()
    only: Sequence[str] | None = ctx.option("train", "variants")
    settings = ctx.settings
    dataset = dataset_ref(settings, data_version)
    config = public_dict(settings)
    opened: dict[str, str] = {}

    @contextlib.contextmanager
    def open_run(name: str) -> Iterator[Callable[[TrainedVariant], str]]:
        with training_run(settings, name, data_version, config=config,
                          dataset=dataset) as tracked:
            opened[name] = tracked.run_id
            yield tracked.log

    trained = train_all(ctx, Path(features.path), data_version, only, open_run)
    ctx.progress("logging runs to MLflow")
    run_ids = {**log_trained_variants(settings, [t for v, t in trained.items()
                                                 if v not in opened], dataset=dataset),
               **opened}
    summary = "; ".join(
        f"{v}: accuracy {t.metrics['accuracy']:.3f} "
        f"[{t.metrics['accuracy_ci_low']:.3f}, {t.metrics['accuracy_ci_high']:.3f}]"
        for v, t in trained.items())
    up = next(iter(trained.values())).baselines.get("always_up", {}).get("accuracy")
    if up is not None:
        summary += f"; always-up {up:.3f}"
    summary += "".join(f"; {line}" for line in not_improved_lines(trained))
    entries: dict[str, Any] = {v: None for v in previous
                               if v not in ctx.settings.train.variants}
    entries.update({v: t.model_copy(update={"run_id": run_ids[v]}).to_json()
                    for v, t in trained.items()})
    return StageResult(summary=summary, outputs={"trained": entries})
