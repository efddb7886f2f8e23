"""The register stage: a registry version per trained variant, aliases moved (tracking docs)."""

from __future__ import annotations

from typing import Any

from finmlops.contracts import RegisteredEntry, TrainedVariant
from finmlops.errors import StageError
from finmlops.pipeline.runner import RunContext, StageResult


def _log_from_state(ctx: RunContext, trained: TrainedVariant) -> str:
    """Log a run for a variant the train stage did not log (the state records all of it)."""
    from finmlops.config import public_dict
    from finmlops.pipeline._train import dataset_ref
    from finmlops.tracking import log_training

    settings = ctx.settings
    if trained.variant not in settings.train.variants:
        raise StageError(f"trained variant {trained.variant!r} is not in train.variants; "
                         "retrain")
    return log_training(settings, trained, ctx.state.get("config") or public_dict(settings),
                        dataset=dataset_ref(settings, trained.data_version))


def run(ctx: RunContext) -> StageResult:
    """Register each trained variant's run (logging it first if train did not)."""
    from finmlops.tracking import baseline_variant, register, resolve

    state = ctx.run_state("trained", "dataset_version")
    trained = state.need_trained()
    # The baseline first: it may become champion, and the challenger (the newest) then is
    # another arm.
    first = baseline_variant(ctx.settings)
    order = sorted(trained, key=lambda v: v != first)
    logged: dict[str, TrainedVariant] = {}
    versions: dict[str, str] = {}
    for i, variant in enumerate(order):
        ctx.progress(f"registering {variant}", i, len(order))
        t = trained[variant]
        data_version = state.dataset_version or t.data_version
        run_id = t.run_id or _log_from_state(ctx, t)
        if run_id != t.run_id:
            logged[variant] = t.model_copy(update={"run_id": run_id})
        versions[variant] = register(ctx.settings, run_id, variant, data_version).version
    ctx.progress("registered", len(order), len(order))
    # Aliases move as later variants register, so read them once all are in.
    registered: dict[str, RegisteredEntry] = {}
    for variant, version in versions.items():
        current = resolve(ctx.settings, version)
        registered[variant] = RegisteredEntry(version=version, aliases=list(current.aliases),
                                              run_id=current.run_id)
    outputs: dict[str, Any] = {"registered": {v: r.to_json() for v, r in registered.items()}}
    if logged:
        outputs["trained"] = {v: t.to_json() for v, t in logged.items()}
    summary = ", ".join(
        f"{v} v{r.version}" + (f" ({', '.join(r.aliases)})" if r.aliases else "")
        for v, r in registered.items()
    )
    return StageResult(summary=f"{ctx.settings.registered_model}: {summary}", outputs=outputs)
