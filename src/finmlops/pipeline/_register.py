"""The register stage: a registry version per trained variant, aliases moved (tracking docs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finmlops.errors import StageError
from finmlops.pipeline.runner import RunContext, StageResult


def _log_from_state(ctx: RunContext, variant: str, info: dict[str, Any],
                    data_version: str) -> str:
    """Log a run for a variant the train stage did not log, from what the state records."""
    from finmlops.config import public_dict
    from finmlops.models import TrainedVariant
    from finmlops.pipeline._train import dataset_ref
    from finmlops.tracking import log_training

    settings = ctx.settings
    if variant not in settings.train.variants:
        raise StageError(f"trained variant {variant!r} is not in train.variants; retrain")
    model_dir = Path(info["model_dir"])
    meta_path = model_dir / "model.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    result_path = model_dir / "result.json"
    losses = (json.loads(result_path.read_text(encoding="utf-8")).get("losses") or []
              if result_path.is_file() else [])
    trained = TrainedVariant(
        variant=variant, settings=settings.train.variants[variant], model_dir=model_dir,
        oos_path=Path(info.get("oos_path") or model_dir / "oos.parquet"),
        fold_metrics=list(info.get("fold_metrics", [])), metrics=dict(info.get("metrics", {})),
        baselines=dict(info.get("baselines", {})),
        weights_hash=str(info.get("weights_hash") or meta.get("weights_hash", "")),
        data_version=data_version, feature_names=list(meta.get("feature_names", [])),
        seconds=float(info.get("seconds", 0.0)), losses=list(losses),
    )
    return log_training(settings, trained, ctx.state.get("config") or public_dict(settings),
                        dataset=dataset_ref(settings, data_version))


def run(ctx: RunContext) -> StageResult:
    """Register each trained variant's run (logging it first if train did not)."""
    from finmlops.tracking import baseline_variant, register, resolve

    trained: dict[str, dict[str, Any]] = ctx.require("trained", "train")
    dataset_version = str(ctx.state.get("dataset_version") or "")
    # The baseline first: it may become champion, and the challenger (the newest) then is
    # another arm.
    first = baseline_variant(ctx.settings)
    order = sorted(trained, key=lambda v: v != first)
    updated = {v: dict(trained[v]) for v in order}
    logged = False
    versions: dict[str, str] = {}
    for i, (variant, info) in enumerate(updated.items()):
        ctx.progress(f"registering {variant}", i, len(updated))
        data_version = dataset_version or str(info.get("data_version", ""))
        if not info.get("run_id"):
            info["run_id"] = _log_from_state(ctx, variant, info, data_version)
            logged = True
        versions[variant] = register(ctx.settings, info["run_id"], variant, data_version).version
    ctx.progress("registered", len(updated), len(updated))
    # Aliases move as later variants register, so read them once all are in.
    registered = {}
    for variant, version in versions.items():
        current = resolve(ctx.settings, version)
        registered[variant] = {"version": version, "aliases": list(current.aliases),
                               "run_id": current.run_id}
    outputs: dict[str, Any] = {"registered": registered}
    if logged:
        outputs["trained"] = updated
    summary = ", ".join(
        f"{v} v{r['version']}" + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        for v, r in registered.items()
    )
    return StageResult(summary=f"{ctx.settings.registered_model}: {summary}", outputs=outputs)
