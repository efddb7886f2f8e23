"""The model registry: one registered model per target, a version per registered run, aliases.

Aliases (MLflow's named pointers to a version; the rules are :mod:`finmlops.tracking.aliases`):

- ``champion``: the model in production. The first registered version of the experiment's
  default arm (the A/B test's reference; else the ``baseline`` variant, else whichever comes
  first) becomes champion when there is none; afterwards only
  :func:`finmlops.tracking.promote` moves it.
- ``challenger``: the newest registered version.
- ``previous-champion``: the champion before the last promotion (for a manual roll-back).
- one alias per variant (``baseline``, ``enhanced``, ...): always the newest version of that
  variant, so each arm of the A/B experiment is addressable as ``models:/<name>@<variant>``.

A version's source is its run's ``LoggedModel`` (``models:/<model_id>``), which MLflow resolves
to the model's artifact location; the logged model lists the versions made from it. Runs logged
before models were MLflow models register their ``model/`` folder, as they always did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finmlops.config import Settings
from finmlops.contracts import CARD, ModelCard
from finmlops.errors import ConfigError, ModelNotFoundError
from finmlops.tracking._client import Tracker, configure, global_tracking_uri, translate
from finmlops.tracking.aliases import RESERVED_ALIASES, after_register, changes
from finmlops.tracking.logged_model import link_version, model_id_of

AUDIT_PREFIX = "audit."
_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")
_HEADLINE = {
    "accuracy": ("accuracy",),
    "accuracy_ci_low": ("accuracy_ci_low", "accuracy_ci_lower", "accuracy_lo", "accuracy_low"),
    "accuracy_ci_high": ("accuracy_ci_high", "accuracy_ci_upper", "accuracy_hi",
                         "accuracy_high"),
    "auc": ("auc", "roc_auc"),
    "sharpe": ("sharpe", "net_sharpe", "sharpe_net", "backtest.sharpe"),
}


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version, with what serving and the A/B test need to know about it."""

    name: str
    version: str
    run_id: str
    variant: str
    data_version: str
    weights_hash: str
    source: str
    created: str
    """ISO 8601, UTC."""
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


def baseline_variant(settings: Settings) -> str | None:
    """The variant that starts as champion: the experiment's default arm (the A/B test's
    reference, so the champion and the reference agree) when it is a variant, else
    ``baseline`` when configured; ``None`` when neither is (then the first registered wins)."""
    variants = settings.train.variants
    default = settings.experiment.default
    if default is not None and default in variants:
        return default
    return "baseline" if "baseline" in variants else None


def check_alias(alias: str) -> None:
    """Raise :class:`ConfigError` when ``alias`` cannot be an MLflow alias."""
    if not _ALIAS.match(alias) or _VERSION_LIKE.match(alias) or alias.lower() == "latest":
        raise ConfigError(
            f"{alias!r} cannot be a registry alias: use letters, digits, '_' or '-', "
            "not 'latest' or a version-like 'v<N>'"
        )


def check_variant_name(variant: str) -> None:
    """A variant's name becomes an alias, so it must be valid and not a reserved alias."""
    check_alias(variant)
    if variant in RESERVED_ALIASES:
        raise ConfigError(f"variant name {variant!r} is reserved for a registry alias; rename it")


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _info(tracker: Tracker, mv: Any, alias_map: dict[str, Any] | None = None) -> ModelVersionInfo:
    """``alias_map`` (alias -> version) when ``mv`` came from a search, which omits aliases."""
    tags = dict(mv.tags or {})
    aliases = (mv.aliases or ()) if alias_map is None else [
        a for a, v in alias_map.items() if str(v) == str(mv.version)]
    return ModelVersionInfo(
        name=str(mv.name), version=str(mv.version), run_id=str(mv.run_id or ""),
        variant=tags.get("variant", ""), data_version=tags.get("data_version", ""),
        weights_hash=tags.get("weights_hash", ""), source=str(mv.source or ""),
        created=_iso(mv.creation_timestamp), aliases=tuple(sorted(aliases)), tags=tags,
    )


def registry_versions(tracker: Tracker, extra_filter: str = "") -> list[Any]:
    flt = f"name = '{tracker.registered_model}'" + (f" and {extra_filter}" if extra_filter else "")
    out: list[Any] = []
    token = None
    while True:
        page = tracker.client.search_model_versions(flt, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return sorted(out, key=lambda mv: int(mv.version))


def _ensure_registered_model(tracker: Tracker) -> None:
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.get_registered_model(tracker.registered_model)
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            tracker.client.create_registered_model(
                tracker.registered_model,
                description="finmlops direction models; aliases: champion, challenger, "
                            "previous-champion and one per variant.",
            )
        except MlflowException as again:  # created concurrently
            if str(getattr(again, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
                raise


def alias_version(tracker: Tracker, alias: str) -> str | None:
    """The version an alias points at, or ``None``."""
    from mlflow.exceptions import MlflowException

    try:
        return str(tracker.client.get_model_version_by_alias(tracker.registered_model,
                                                             alias).version)
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) in ("RESOURCE_DOES_NOT_EXIST",
                                                   "INVALID_PARAMETER_VALUE"):
            return None
        raise


def current_aliases(tracker: Tracker) -> dict[str, str]:
    """``{alias: version}`` of the registered model (empty when it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = tracker.client.get_registered_model(tracker.registered_model)
    except MlflowException as exc:
        if str(getattr(exc, "error_code", "")) == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {str(a): str(v) for a, v in (rm.aliases or {}).items()}


def apply_aliases(tracker: Tracker,
                  rule: Callable[[dict[str, str]], dict[str, str]]) -> list[str]:
    """Read the aliases, apply a pure ``rule`` and write the difference; returns the aliases
    that were set or removed."""
    before = current_aliases(tracker)
    to_set, to_delete = changes(before, rule(before))
    for alias, version in to_set.items():
        tracker.client.set_registered_model_alias(tracker.registered_model, alias, version)
    for alias in to_delete:
        tracker.client.delete_registered_model_alias(tracker.registered_model, alias)
    return sorted([*to_set, *to_delete])


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def append_audit(tracker: Tracker, event: dict[str, Any]) -> dict[str, Any]:
    """Append an event to the registered model's audit trail (tags ``audit.000001``, ...)."""
    rm = tracker.client.get_registered_model(tracker.registered_model)
    seqs = [int(k[len(AUDIT_PREFIX):]) for k in (rm.tags or {})
            if k.startswith(AUDIT_PREFIX) and k[len(AUDIT_PREFIX):].isdigit()]
    seq = max(seqs, default=0) + 1
    event = {"seq": seq, **event}
    text = json.dumps(event, sort_keys=True, default=str)
    if len(text) > 90_000:  # MLflow caps a registry tag value at 100 000 characters
        event["decision"] = {"truncated": True}
        text = json.dumps(event, sort_keys=True, default=str)
    tracker.client.set_registered_model_tag(tracker.registered_model,
                                            f"{AUDIT_PREFIX}{seq:06d}", text)
    return event


@translate
def register(settings: Settings, run_id: str, variant: str, data_version: str) -> ModelVersionInfo:
    """Register ``run_id``'s ``model/`` as a new version and move the aliases (module doc).

    Registering a run that already has a version returns that version and moves nothing.
    """
    from mlflow.exceptions import MlflowException

    check_variant_name(variant)
    tracker = configure(settings)
    client = tracker.client
    _ensure_registered_model(tracker)
    existing = registry_versions(tracker, f"run_id = '{run_id}'")
    if existing:
        return _info(tracker, client.get_model_version(tracker.registered_model,
                                                       existing[0].version))
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ModelNotFoundError(f"no tracking run {run_id!r} to register") from exc
    tags = {"variant": variant, "data_version": data_version,
            "weights_hash": run.data.tags.get("weights_hash", ""),
            "config_hash": run.data.tags.get("config_hash", ""),
            "registered_at": now_iso()}
    model_id = model_id_of(run)
    description = f"{variant} trained on dataset {data_version}"
    if model_id is None:  # a run from before MLflow-native models: its model/ folder
        mv = client.create_model_version(
            tracker.registered_model, source=f"{run.info.artifact_uri.rstrip('/')}/model",
            run_id=run_id, tags=tags, description=description)
    else:
        # MLflow's SQL registry resolves a models:/<id> source through the process-wide
        # tracking URI, not this client's.
        with global_tracking_uri(tracker.tracking_uri):
            mv = client.create_model_version(
                tracker.registered_model, source=f"models:/{model_id}", run_id=run_id,
                tags=tags, description=description, model_id=model_id)
        link_version(tracker, model_id, str(mv.version))
    version = str(mv.version)
    moved = apply_aliases(tracker, lambda current: after_register(
        current, version, variant, baseline_variant(settings)))
    append_audit(tracker, {"action": "register", "version": version, "variant": variant,
                           "aliases": moved, "run_id": run_id, "actor": "pipeline",
                           "at": tags["registered_at"], "reason": "new training run",
                           "decision": {}})
    return _info(tracker, client.get_model_version(tracker.registered_model, version))


@translate
def resolve(settings: Settings, ref: str) -> ModelVersionInfo:
    """The version named by ``ref``: an alias (``champion``, ``baseline``), a version number
    (``3`` or ``v3``) or ``latest``. Raises :class:`ModelNotFoundError` otherwise."""
    from mlflow.exceptions import MlflowException

    tracker = configure(settings)
    name = tracker.registered_model
    ref = str(ref).strip()
    number = ref[1:] if _VERSION_LIKE.match(ref) else ref
    if number.isdigit():
        try:
            return _info(tracker, tracker.client.get_model_version(name, str(int(number))))
        except MlflowException:
            raise ModelNotFoundError(f"model {name!r} has no version {int(number)}") from None
    if ref.lower() == "latest":
        versions = registry_versions(tracker)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no registered version")
        return _info(tracker, tracker.client.get_model_version(name, versions[-1].version))
    if not _ALIAS.match(ref):
        raise ModelNotFoundError(f"{ref!r} is neither a version nor an alias of {name!r}")
    version = alias_version(tracker, ref)
    if version is None:
        raise ModelNotFoundError(f"model {name!r} has no version with alias {ref!r}")
    return _info(tracker, tracker.client.get_model_version(name, version))


def _headline(metrics: dict[str, float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, candidates in _HEADLINE.items():
        out[key] = next((float(metrics[c]) for c in candidates if c in metrics), None)
    return out


@translate
def list_models(settings: Settings) -> list[dict[str, Any]]:
    """Every registered version, newest first, with its aliases and headline metrics."""
    from mlflow.exceptions import MlflowException

    tracker = configure(settings)
    versions = registry_versions(tracker)
    if not versions:
        return []
    alias_map = dict(tracker.client.get_registered_model(tracker.registered_model).aliases or {})
    rows = []
    for mv in reversed(versions):
        info = _info(tracker, mv, alias_map)
        try:
            metrics = dict(tracker.client.get_run(info.run_id).data.metrics) if info.run_id else {}
        except MlflowException:
            metrics = {}
        head = _headline(metrics)
        low, high = head.pop("accuracy_ci_low"), head.pop("accuracy_ci_high")
        rows.append({
            "version": info.version, "variant": info.variant, "aliases": list(info.aliases),
            "data_version": info.data_version, "run_id": info.run_id, "created": info.created,
            "weights_hash": info.weights_hash,
            "status": "rolled_back" if info.tags.get("rolled_back") == "true" else "",
            **head, "accuracy_ci": [low, high] if low is not None and high is not None else None,
        })
    return rows


PUBLISHED_TAG = "triton_repository"
"""Version tag: the Triton model repository ``finmlops models publish`` wrote it to."""


@translate
def mark_published(settings: Settings, version: str, repository: str) -> None:
    """Record on ``version`` where its Triton repository was published."""
    tracker = configure(settings)
    tracker.client.set_model_version_tag(tracker.registered_model, str(version), PUBLISHED_TAG,
                                         repository)


@translate
def run_metrics(settings: Settings, run_id: str) -> dict[str, float]:
    """A run's latest metric values."""
    return dict(configure(settings).client.get_run(run_id).data.metrics)


@translate
def download_model(settings: Settings, ref: str, dest: Path) -> Path:
    """Fetch the model named by ``ref`` into ``dest`` (created) and return it.

    ``dest`` then is an exported model directory (docs/CONTRACTS.md): ``model.onnx`` and
    ``model.json`` at its root, the json extended with ``registered_model``, ``model_version``,
    ``aliases`` and ``run_id``; beside them the MLflow model's own files (``MLmodel``, the
    environment, the input example), so ``dest`` also loads with ``mlflow.pyfunc``.
    """
    import mlflow.artifacts

    info = resolve(settings, ref)
    tracker = configure(settings)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # This client's registry resolves the version to its storage location (the logged model's
    # artifacts); MLflow's models:/ download would ask the process-wide registry instead.
    location = tracker.client.get_model_version_download_uri(info.name, info.version)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=tracker.tracking_uri))
        for item in local.iterdir():
            if item.is_file():
                shutil.copyfile(item, dest / item.name)
    if not (dest / "model.onnx").is_file() or not (dest / CARD).is_file():
        raise ModelNotFoundError(
            f"version {info.version} of {info.name!r} has no model.onnx + model.json")
    card = ModelCard.read(dest).model_copy(update={
        "registered_model": info.name, "model_version": info.version,
        "aliases": list(info.aliases), "run_id": info.run_id})
    card.write(dest)
    return dest


def download_arms(settings: Settings, root: Path,
                  refs: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Every arm of the experiment (candidates and mirror) as an exported model directory
    ``root/<arm>``: the version ``refs[arm]`` names (an alias or a version number), by
    default the arm's variant alias; each card carries its registry version."""
    wanted = refs or {}
    return {arm: download_model(settings, wanted.get(arm, arm), Path(root) / arm)
            for arm in settings.experiment.arms}
