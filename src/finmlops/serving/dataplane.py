"""The data plane: resolve a model or the experiment, route, predict, commit, answer.

It knows nothing of HTTP (the REST shell in :mod:`finmlops.serving.rest` and any other
transport call it). One request's path: resolve the target (a model, or the experiment by its
name, ``<name>.experiment``, or its ``default`` model's name, as in Seldon Core v2); route it
(:class:`~finmlops.serving.router.Router`: salted key hash, random draw, or pin); predict with
ONNX Runtime; hand the record to the ledger's group-commit writer and wait for the commit
(with shadow and mirror scores computed by the writer, batched, in the same transaction); then
answer. A prediction that could not be committed is refused (503), never answered.
What the writer runs on its thread is in :mod:`finmlops.serving._commit`; the answer types
in :mod:`finmlops.serving.results`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlops.config import ExperimentSettings, Settings
from finmlops.errors import (
    BadRequestError,
    ConfigError,
    FinmlopsError,
    LedgerUnavailableError,
    ModelNotFoundError,
    NotReadyError,
)
from finmlops.ledger import (
    Feedback,
    FeedbackResult,
    GroupCommitWriter,
    Ledger,
    Served,
    WriterEvents,
    open_ledger,
)
from finmlops.monitoring.metrics import Metrics
from finmlops.serving._commit import CommitSide
from finmlops.serving._telemetry import Telemetry
from finmlops.serving.experiment import LiveExperiment
from finmlops.serving.protocol import InferRequest
from finmlops.serving.results import ROWS_ARM, InferResult, Route, Target
from finmlops.serving.router import Router, parse_route
from finmlops.serving.runtime import LoadedModel, load_models

log = logging.getLogger("finmlops.serving")

INLINE_ROWS = 64
"""Batches up to this many rows run on the event loop; larger ones in a thread."""
EXPERIMENT_SUFFIX = ".experiment"
MODEL_SUFFIX = ".model"


class DataPlane(CommitSide):
    """Models, the experiment and the ledger of one serving process."""

    def __init__(self, settings: Settings, loader: Callable[[], Mapping[str, Path]],
                 metrics: Metrics,
                 settings_loader: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader
        self._settings_loader = settings_loader
        self.models: dict[str, LoadedModel] = {}
        self.loaded = False
        self.load_error: str | None = None
        self.ledger: Ledger | None = None
        self.telemetry = Telemetry(metrics, settings.monitoring)
        self.experiment = LiveExperiment(settings.experiment, settings.ledger.poll_interval_s,
                                         on_change=self._router_changed)
        lg = settings.ledger
        self.writer: GroupCommitWriter[Served] = GroupCommitWriter(
            self._commit, max_queue=lg.max_queue, batch_max=lg.batch_max,
            linger_s=lg.linger_ms / 1000.0, fail_after=lg.fail_after, probe=self._probe,
            ping=self._ping, probe_interval_s=lg.probe_interval_s,
            events=WriterEvents(committed=self._committed, refused=self._refused,
                                health=self._health),
            threads=lg.writers or (2 if settings.ledger_url.startswith("postgres") else 1),
            inline=self._commit_inline if settings.ledger_url.startswith("sqlite") else None)
        # Prediction ids: a random per-process prefix and a counter (unique across workers and
        # pods without coordination). Keyless routing draws from a generator seeded from
        # os.urandom, so no two processes (or restarts) replay the same sequence.
        self._id_prefix = f"{uuid.uuid4().hex[:16]}-"
        self._ids = itertools.count(1)
        self._rng = random.Random(int.from_bytes(os.urandom(16), "big"))  # noqa: S311
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._shadow_arms: frozenset[str] = frozenset()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return (self.loaded and self.ledger is not None and self.writer.healthy
                and self.experiment.known)

    def status(self) -> dict[str, Any]:
        """Why the service is (not) ready — for the admin scope, not the open probe."""
        router = self.experiment._router
        return {"ready": self.ready, "models_loaded": self.loaded,
                "load_error": self.load_error,
                "ledger": self.ledger.describe() if self.ledger is not None else None,
                "ledger_healthy": self.writer.healthy, "ledger_error": self.writer.last_error,
                "ledger_pending": self.writer.pending,
                "experiment": router.describe() if router is not None else None,
                "experiment_error": self.experiment.last_error}

    def start(self) -> None:
        """Load the models, open the ledger, seed the experiment — in a thread (readiness
        stays false until all three are done; the ledger is retried until it answers)."""
        self.metrics.ready.set(0)
        self.metrics.ledger_healthy.set(1)
        for reason in ("queue_full", "unavailable", "write_failed", "shutdown"):
            self.metrics.ledger_refused.labels("infer", reason)  # every series from 0
        self.metrics.ledger_refused.labels("feedback", "write_failed")
        threading.Thread(target=self._startup, name="finmlops-startup", daemon=True).start()

    def _startup(self) -> None:
        try:
            self._load()
            if self.loaded:
                self._open_ledger()
        finally:
            self._started.set()
            self.metrics.ready.set(int(self.ready))

    def wait_started(self, timeout: float = 60.0) -> bool:
        """Wait for the startup attempt; True when ready."""
        self._started.wait(timeout)
        return self.ready

    def _load(self) -> None:
        try:
            models = load_models(self._loader())
            exp = self.settings.experiment
            missing = [a for a in exp.arms if a not in models]
            if missing:
                raise ModelNotFoundError(
                    f"experiment {exp.name!r}: no model for arm(s) {', '.join(missing)}")
            self.models = models
            self.telemetry.models_loaded(models, exp.name)
            for arm in models:
                self.metrics.shadow_failures.labels(arm)
            self.loaded = True
        except FinmlopsError as exc:
            self.load_error = exc.message
            log.error("models not loaded: %s", exc.message)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("models not loaded")

    def _open_ledger(self) -> None:
        lg = self.settings.ledger
        url = self.settings.ledger_url
        while not self._stopping.is_set():
            try:
                self.ledger = open_ledger(url, create=True, timeout_s=lg.write_timeout_s,
                                          pool_size=lg.pool_size)
                break
            except FinmlopsError as exc:
                self.load_error = exc.message
                log.error("ledger not open (retrying): %s", exc.message)
                self._stopping.wait(lg.probe_interval_s)
        if self.ledger is None:
            return
        self.load_error = None
        self.writer.start()
        self.experiment.start(self.ledger, self._validate)
        threading.Thread(target=self._summaries, name="finmlops-summary", daemon=True).start()
        log.info("ledger %s open", self.ledger.describe())

    def _summaries(self) -> None:
        """Re-read the experiment's outcomes for the ``finmlops_ledger_*`` gauges."""
        while True:
            self.refresh_summary()
            if self._stopping.wait(self.settings.ledger.summary_interval_s):
                return

    def refresh_summary(self) -> None:
        ledger = self.ledger
        router = self.experiment._router
        if ledger is None:
            return
        name = self.experiment.name
        try:
            outcomes = ledger.outcomes(name, self.settings.evaluation)
            last = ledger.last_outcome_time(name)
            self.telemetry.ledger_summary(name, outcomes,
                                          router.default if router is not None else None, last)
        except FinmlopsError as exc:
            log.warning("ledger summary not refreshed: %s", exc.message)
        except Exception:  # the gauges wait for the next round; the thread lives on
            log.exception("ledger summary not refreshed")

    def stop(self) -> None:
        """Stop taking traffic: commit what is queued, stop polling, close the ledger."""
        self._stopping.set()
        self.metrics.ready.set(0)
        self.writer.close()
        self.experiment.stop()
        if self.ledger is not None:
            self.ledger.close()

    # -- the experiment --------------------------------------------------------------------

    def _validate(self, router: Router) -> None:
        needed = [*router.arms, *([router.mirror] if router.mirror else [])]
        missing = [a for a in needed if a not in self.models]
        if missing:
            raise BadRequestError(f"no loaded model for arm(s): {', '.join(missing)}")

    def _router_changed(self, old: Router | None, router: Router) -> None:
        self.telemetry.weights(old, router)
        self.metrics.ready.set(int(self.ready))

    def set_weights(self, candidates: Sequence[tuple[str, int]], actor: str,
                    reason: str = "admin endpoint") -> Router:
        """A new experiment version with these candidates, in force on every replica."""
        current = self.experiment.router
        names = [n for n, _ in candidates]
        default = current.default if current.default in names else None
        try:
            config = ExperimentSettings(
                name=current.experiment, default=default,
                candidates=[{"name": n, "weight": w} for n, w in candidates],
                mirror=(None if current.mirror is None else
                        {"name": current.mirror, "percent": current.mirror_percent}),
                shadow=current.shadow)
        except ValueError as exc:
            raise BadRequestError(f"invalid candidates: {_first_error(exc)}") from None
        Router.from_settings(config)  # the router's own checks, as a 400
        return self.experiment.publish(config, source="admin", actor=actor, reason=reason)

    def reload(self, actor: str) -> Router:
        """Re-read the configuration's experiment section and put it in force."""
        if self._settings_loader is None:
            from finmlops.config import load_settings

            settings = load_settings()
        else:
            settings = self._settings_loader()
        config = settings.experiment
        if config.name != self.experiment.name:
            raise ConfigError(f"reload: the experiment is {self.experiment.name!r}, the file "
                              f"names {config.name!r}")
        return self.experiment.publish(config, source="config", actor=actor,
                                       reason="reload of the configuration")

    # -- inference -------------------------------------------------------------------------

    def resolve(self, name: str, version: str | None, seldon_model: str | None,
                inference: bool = True) -> Target:
        """The experiment or model a request addresses (by path, or ``seldon-model``); for
        inference, the experiment's ``default`` model's own name enters the experiment (as in
        Seldon Core v2) unless addressed as ``<name>.model``."""
        if not self.loaded:
            raise NotReadyError("models are not loaded yet")
        direct = False
        if seldon_model is not None:
            name = seldon_model.strip()
            if name.endswith(MODEL_SUFFIX):
                name, direct = name.removesuffix(MODEL_SUFFIX), True
            name = name.removesuffix(EXPERIMENT_SUFFIX)
        exp_name = self.experiment.name
        router = self.experiment._router
        is_default = (inference and router is not None and name == router.default
                      and version is None)
        if name == exp_name or (is_default and not direct):
            if version is not None:
                raise ModelNotFoundError(f"experiment {exp_name!r} has no versions")
            arms = router.arms if router is not None else tuple(self.models)
            return Target(exp_name, self.models[arms[0]])
        model = self.models.get(name)
        if model is None:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if version is not None and version != model.version:
            raise ModelNotFoundError(f"model {name!r} has no version {version!r}")
        return Target(None, model)

    async def infer(self, target: Target, req: InferRequest, *, routing_key: str | None,
                    pinned: str | None, client_id: str | None) -> InferResult:
        """Route, predict, commit; the result is returned only once the ledger holds it (a
        ledger that is failing refuses in the writer, counted). A request with per-row routing
        keys routes each row on its own key (:meth:`_infer_rows`)."""
        if not (self.loaded and self.ledger is not None and self.experiment.known):
            raise NotReadyError("not ready")
        if req.row_keys is not None:
            return await self._infer_rows(target, req, req.row_keys, pinned, client_id)
        version: int | None = None
        if target.experiment is not None:
            router = self.experiment.router
            version = router.version
            route = self._route(router, routing_key,
                                parse_route(pinned, router.arms) if pinned else None)
        else:
            route = Route(target.model.name, "direct", 1.0, ())
        model = self.models[route.arm] if target.experiment is not None else target.model
        x = req.x
        n = x.shape[0]
        probs = await self._predict(model, x)
        first = f"{self._id_prefix}{next(self._ids):x}"
        ids = (first,) if n == 1 else (first, *(f"{first}/{i}" for i in range(1, n)))
        served = Served(time.time(), ids, client_id, target.experiment, version, route.arm,
                        model.version, routing_key, route.assignment, route.propensity, x,
                        probs, route.also)
        await self.writer.submit(served)
        values = probs.tolist()
        self.telemetry.count_predictions(target.experiment or "", route.arm, model.version,
                                         values, self.settings.evaluation.threshold)
        return InferResult(route.arm, model.version, client_id or first, first,
                           model.output_name, values, target.experiment, version,
                           route.assignment)

    async def _infer_rows(self, target: Target, req: InferRequest, keys: Sequence[str],
                          pinned: str | None, client_id: str | None) -> InferResult:
        """Each row routed on its own key, as if sent alone: one ONNX Runtime call and one
        ledger item per arm, all committed before the answer."""
        n = len(keys)
        version: int | None = None
        groups: dict[Route, list[int]] = {}
        if target.experiment is not None:
            router = self.experiment.router
            version = router.version
            pin = parse_route(pinned, router.arms) if pinned else None
            for i, key in enumerate(keys):
                groups.setdefault(self._route(router, key, pin), []).append(i)
        else:
            groups[Route(target.model.name, "direct", 1.0, ())] = list(range(n))
        first = f"{self._id_prefix}{next(self._ids):x}"
        ids = (first, *(f"{first}/{i}" for i in range(1, n)))
        probs = np.empty(n, dtype=np.float32)
        arms = [""] * n
        items: list[Served] = []
        ts = time.time()
        for route, rows in groups.items():
            model = self.models[route.arm] if target.experiment is not None else target.model
            idx = np.asarray(rows)
            x = req.x[idx]
            p = await self._predict(model, x)
            probs[idx] = p
            for i in rows:
                arms[i] = route.arm
            items.append(Served(ts, tuple(ids[i] for i in rows), client_id, target.experiment,
                                version, route.arm, model.version, None, route.assignment,
                                route.propensity, x, p, route.also,
                                tuple(keys[i] for i in rows)))
        await asyncio.gather(*(self.writer.submit(it) for it in items))
        threshold = self.settings.evaluation.threshold
        for it in items:
            self.telemetry.count_predictions(target.experiment or "", it.arm, it.model_version,
                                             it.probabilities.tolist(), threshold,
                                             request=False)
        name = target.experiment or target.model.name
        version_label = "" if target.experiment is not None else target.model.version
        self.telemetry.count_request(name, version_label, target.experiment or "", ROWS_ARM)
        return InferResult(name, version_label, client_id or first, first,
                           target.model.output_name, probs.tolist(), target.experiment,
                           version, "per-row", tuple(arms), ids)

    def _route(self, router: Router, key: str | None, pin: str | None) -> Route:
        choice = router.choose(key, self._rng.random(), pin)
        arm = choice.arm
        also: tuple[str, ...] = ()
        if router.shadow:
            also = tuple(a for a in router.arms if a != arm)
        if router.mirror and router.mirror != arm and router.mirror not in also \
                and router.mirrors(key, self._rng.random()):
            also = (*also, router.mirror)
        return Route(arm, choice.assignment, choice.propensity, also)

    @staticmethod
    async def _predict(model: LoadedModel, x: np.ndarray) -> np.ndarray:
        if x.shape[0] <= INLINE_ROWS:
            return model.predict(x)
        return await asyncio.get_running_loop().run_in_executor(None, model.predict, x)

    # -- feedback --------------------------------------------------------------------------

    def apply_feedback(self, items: Sequence[Feedback], caller: str) -> FeedbackResult:
        """Join outcomes in the shared ledger (blocking; call it in a thread)."""
        ledger = self.ledger
        if ledger is None:
            raise NotReadyError("the ledger is not open")
        try:
            result = ledger.apply_feedback(items, caller, self.settings.evaluation)
        except LedgerUnavailableError:
            self.metrics.ledger_refused.labels("feedback", "write_failed").inc()
            raise
        router = self.experiment._router
        self.telemetry.count_outcomes(result.outcomes,
                                      router.default if router is not None else None)
        return result

    # -- metadata --------------------------------------------------------------------------

    def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Every model and the experiment, as the model repository extension lists them."""
        state = "READY" if self.ready else "UNAVAILABLE"
        out = [{"name": m.name, "version": m.version, "state": state, "reason": ""}
               for m in self.models.values()]
        out.append({"name": self.experiment.name, "version": "", "state": state,
                    "reason": "" if self.ready else "not ready"})
        return [m for m in out if m["state"] == "READY" or not ready_only]

    def metadata(self, target: Target, ready_only: bool) -> dict[str, Any]:
        if target.experiment is None:
            m = target.model
            return {"name": m.name, "ready": True} if ready_only else m.metadata()
        name = target.experiment
        if ready_only:
            return {"name": name, "ready": self.ready}
        router = self.experiment.router
        first = self.models[router.arms[0]].metadata()
        return {**first, "name": name, "versions": [], "platform": "finmlops-experiment",
                "parameters": router.describe()}


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        items = errors()
        if items:
            return str(items[0].get("msg", exc))
    return str(exc).splitlines()[0]
