"""``finmlops train``: features + walk-forward training of every variant (or ``--variant``
ones: a workflow trains each in its own pod), with the out-of-sample accuracy table beside the
naive baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finmlops.cli._common import (
    JsonOption,
    console,
    emit,
    print_json,
    run_stage,
    settings_from,
)

if TYPE_CHECKING:
    from finmlops.contracts import TrainedVariant

# (label, metric key, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("days", "n", "d"), ("accuracy", "accuracy", "f3"), ("95% CI", "accuracy_ci", "ci"),
    ("bal. acc.", "balanced_accuracy", "f3"), ("log-loss", "log_loss", "f4"),
    ("Brier", "brier", "f4"), ("AUC", "auc", "f3"),
    ("folds not improved", "folds_not_improved", "of_folds"),
)
BASELINES = (("always_up", "always up"), ("yesterday", "yesterday's direction"))


def train_cmd(
    ctx: typer.Context,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="Train only this configured variant (repeatable; default: all). "
                          "The run state keeps the other variants' entries.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Walk-forward train every configured variant (ingesting first if no dataset exists)
    and print out-of-sample accuracy with 95% CIs beside the naive baselines."""
    from finmlops.pipeline import chosen_variants, load_run_state

    settings = settings_from(ctx)
    chosen = chosen_variants(settings, variant)  # unknown names fail before any work
    stages = ["features", "train"]
    if load_run_state(settings, "dataset_version").dataset_version is None:
        stages.insert(0, "ingest")
    state = run_stage(settings, stages, as_json,
                      options={"train": {"variants": chosen}} if variant else None)
    trained = {v: state.trained[v] for v in chosen}
    run_ids = {v: t.run_id for v, t in trained.items()}
    emit(ctx, {"run_ids": run_ids,
               **({"run_id": str(run_ids[chosen[0]])} if len(chosen) == 1 else {})})
    if as_json:
        print_json({"trained": {v: t.to_json() for v, t in trained.items()},
                    "rows": table_rows(trained)})
        return
    console().print(accuracy_table(trained))


def features_cmd(
    ctx: typer.Context,
    dataset_version: Annotated[str, typer.Option(
        "--dataset-version", help="The dataset version to pin (an id, a unique prefix, "
                                  "or 'latest': the newest in the store).")] = "latest",
    as_json: JsonOption = False,
) -> None:
    """Pin a stored dataset version in the run state (no ingest) and build its feature
    matrix: what the later train, evaluate and register steps use."""
    from finmlops.cli._progress import ConsoleReporter
    from finmlops.data import get_manifest
    from finmlops.pipeline import STAGES, run_stages, select

    settings = settings_from(ctx)
    manifest = get_manifest(settings, None if dataset_version == "latest" else dataset_version)
    with ConsoleReporter(console(stderr=as_json)) as reporter:
        state = run_stages(settings, select(STAGES, only=["features"]), reporter,
                           state={"dataset_version": manifest.version})
    emit(ctx, {"dataset_version": manifest.version})
    if as_json:
        print_json({"dataset_version": manifest.version, "features": state["features"]})


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("features")(features_cmd)


def table_rows(trained: Mapping[str, TrainedVariant]) -> list[dict[str, Any]]:
    """One row per variant, then one per naive baseline (scored on the same days)."""
    rows: list[dict[str, Any]] = [{"name": v, "kind": "model", **t.metrics}
                                  for v, t in trained.items()]
    first = next(iter(trained.values()), None)
    for key, label in BASELINES:
        metrics = first.baselines.get(key) if first is not None else None
        if metrics:
            rows.append({"name": label, "kind": "baseline", **metrics})
    return rows


def _cell(row: dict[str, Any], key: str, kind: str) -> str:
    if kind == "ci":
        low, high = row.get("accuracy_ci_low"), row.get("accuracy_ci_high")
        return "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"
    if kind == "of_folds":  # a model's folds whose validation loss never improved
        count, folds = row.get(key), row.get("folds")
        return "-" if count is None or folds is None else f"{int(count)}/{int(folds)}"
    value = row.get(key)
    if value is None or value != value:  # missing or NaN
        return "-"
    return str(int(value)) if kind == "d" else f"{value:.{kind[1:]}f}"


def accuracy_table(trained: Mapping[str, TrainedVariant]) -> Any:
    from rich.table import Table

    table = Table(title="Out-of-sample direction accuracy (walk-forward)")
    table.add_column("model")
    for label, _, _ in COLUMNS:
        table.add_column(label, justify="right")
    for row in table_rows(trained):
        name = row["name"] if row["kind"] == "model" else f"[dim]{row['name']}[/]"
        table.add_row(name, *(_cell(row, key, kind) for _, key, kind in COLUMNS))
    return table
