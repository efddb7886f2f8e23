"""One MLflow client per (tracking URI, experiment): no global ``mlflow.set_tracking_uri``.

Every finmlops home gets its own :class:`Tracker` (client + experiment id + registered model
name), so two homes in one process never see each other's runs or models. MLflow's noisy
start-up (an SQLAlchemy deprecation warning, migration INFO lines) is silenced here, narrowly.
MLflow's usage telemetry (a request to its vendor on every client call) is off unless the user
turned it on: a pipeline run sends nothing anywhere it was not told to.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlparse

from finmlops.config import Settings
from finmlops.errors import FinmlopsError, ModelNotFoundError, TrackingError

P = ParamSpec("P")
R = TypeVar("R")

_LOCK = threading.Lock()
_TRACKERS: dict[tuple[str, str, str, str], Tracker] = {}
# MLflow 3.17 + SQLAlchemy 2.1: importing MLflow's SQL stores configures mappers that use the
# deprecated ``noload`` strategy. Nothing we can fix; ignore exactly that message.
_IGNORED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"The ``noload`` loader strategy is deprecated", DeprecationWarning),
    (r".*[Ff]ilesystem (tracking )?(backend|store).*deprecated", FutureWarning),
    # Importing mlflow.pyfunc infers schemas of MLflow's own GenAI response types.
    (r".*Any type hint is inferred as AnyType", UserWarning),
)
_QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic")
_GLOBAL_URI_LOCK = threading.Lock()
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3's UI opens an experiment without this tag in its GenAI view; ours trains models."""

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# No artifact-download progress bars: the CLI's own output (a --json document included) is
# the only thing a command prints.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class Tracker:
    """What every tracking call needs: a client bound to one home's URIs."""

    client: Any
    """An ``mlflow.MlflowClient`` (typed ``Any``: mlflow ships no type information)."""
    experiment_id: str
    registered_model: str
    tracking_uri: str


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Ignore the few warnings MLflow emits on its own account (pytest runs with -W error)."""
    with warnings.catch_warnings():
        for message, category in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def translate(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an ``MlflowException`` into a typed finmlops error (not-found → 404/exit 6)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from mlflow.exceptions import MlflowException

        try:
            with quiet():
                return fn(*args, **kwargs)
        except MlflowException as exc:
            raise to_finmlops_error(exc) from None

    return wrapper


def to_finmlops_error(exc: Exception) -> FinmlopsError:
    code = str(getattr(exc, "error_code", ""))
    message = " ".join(str(getattr(exc, "message", exc)).split())
    if code == "RESOURCE_DOES_NOT_EXIST":
        return ModelNotFoundError(message)
    return TrackingError(f"tracking: {message}")


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at ``uri`` for one call, then restore it.

    Only for the MLflow code paths that ignore the client they were called through (the SQL
    registry resolves a ``models:/<model_id>`` source with a default client); the lock keeps two
    homes in one process from seeing each other's URI.
    """
    from mlflow.tracking._tracking_service import utils

    with _GLOBAL_URI_LOCK, utils._use_tracking_uri(uri):
        yield


def is_local(uri: str) -> bool:
    """True for the embedded stores (SQLite file, local directory) whose artifacts we place."""
    scheme = urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # a Windows drive letter


def configure(settings: Settings) -> Tracker:
    """The :class:`Tracker` for ``settings``: tracking and registry on ``settings.tracking_uri``.

    Creates the experiment on first use, with its artifacts under ``settings.artifacts_dir``
    when the store is local (a server decides its own artifact root).
    """
    uri = settings.tracking_uri
    key = (uri, settings.tracking.experiment, str(settings.artifacts_dir),
           settings.registered_model)
    with _LOCK:
        tracker = _TRACKERS.get(key)
        if tracker is None:
            tracker = _create(settings, uri)
            _TRACKERS[key] = tracker
    return tracker


@translate
def _create(settings: Settings, uri: str) -> Tracker:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if urlparse(uri).scheme == "sqlite":
        db = uri.removeprefix("sqlite:///")
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = _experiment(client, settings, uri)
    return Tracker(client=client, experiment_id=experiment_id,
                   registered_model=settings.registered_model, tracking_uri=uri)


def _experiment(client: Any, settings: Settings, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    name = settings.tracking.experiment
    found = client.get_experiment_by_name(name)
    if found is None:
        location = None
        if is_local(uri):
            settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = settings.artifacts_dir.as_uri()
        try:
            return str(client.create_experiment(name, artifact_location=location,
                                                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
        except MlflowException:  # another process created it meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    if EXPERIMENT_KIND_TAG not in (found.tags or {}):  # an experiment made before the tag
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return str(found.experiment_id)


def forget(settings: Settings) -> None:
    """Drop the cached tracker for ``settings`` (e.g. after its database file was replaced)."""
    with _LOCK:
        for key in [k for k in _TRACKERS if k[0] == settings.tracking_uri]:
            del _TRACKERS[key]
