"""The experiment version in force, from one source: the ledger.

At start the experiment section of the configuration is seeded into the ledger as a version
(only when the ledger has none, or when the file changed since it was last seeded). Every
process then polls the ledger's latest version every ``ledger.poll_interval_s`` and swaps its
:class:`~finmlops.serving.router.Router` when it changed, so a change made on one replica
(``PUT /admin/experiment``) or by ``finmlops abtest decide --apply`` reaches every worker and
pod within a poll, and survives restarts. Every prediction row stores the version that routed
it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from finmlops.config import ExperimentSettings
from finmlops.errors import FinmlopsError, NotReadyError
from finmlops.ledger import ExperimentVersion, Ledger
from finmlops.serving.router import Router

log = logging.getLogger("finmlops.serving")

Validate = Callable[[Router], None]
"""Raises when a router names an arm this process cannot serve."""
OnChange = Callable[[Router | None, Router], None]


class LiveExperiment:
    """Holds the router of the version in force and keeps it in step with the ledger."""

    def __init__(self, config: ExperimentSettings, poll_interval_s: float,
                 on_change: OnChange | None = None) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval_s = poll_interval_s
        self.on_change = on_change
        self._router: Router | None = None
        self._ledger: Ledger | None = None
        self._validate: Validate | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def router(self) -> Router:
        router = self._router
        if router is None:
            raise NotReadyError(f"experiment {self.name!r}: its version is not known yet")
        return router

    @property
    def known(self) -> bool:
        return self._router is not None

    def start(self, ledger: Ledger, validate: Validate) -> None:
        """Seed and load the version in force (now if the ledger answers), then poll."""
        self._ledger = ledger
        self._validate = validate
        self.refresh(seed=True)
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="finmlops-experiment",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.refresh(seed=not self.known)

    def refresh(self, seed: bool = False) -> bool:
        """Load the latest version when it differs from the one in force; True if it did."""
        ledger = self._ledger
        if ledger is None:
            return False
        try:
            with self._lock:
                if seed:
                    got: ExperimentVersion | None = ledger.ensure_experiment(self.config)
                else:
                    latest = ledger.latest_version(self.name)
                    current = self._router.version if self._router is not None else 0
                    if latest == current:
                        return False
                    got = ledger.experiment(self.name)
                if got is None:
                    return False
                return self._apply(got)
        except FinmlopsError as exc:
            if exc.message != self.last_error:
                log.error("experiment %s: %s", self.name, exc.message)
            self.last_error = exc.message
            return False

    def _apply(self, version: ExperimentVersion) -> bool:
        router = Router.from_settings(version.config, version.version)
        if self._router is not None and router == self._router:
            return False
        if self._validate is not None:
            try:
                self._validate(router)
            except FinmlopsError as exc:
                self.last_error = f"version {version.version} not applied: {exc.message}"
                log.error("experiment %s: %s", self.name, self.last_error)
                return False
        old, self._router = self._router, router
        self.last_error = None
        log.info("experiment %s version %d: weights %s (%s by %s)", self.name,
                 version.version, dict(zip(router.arms, router.weights, strict=True)),
                 version.source, version.actor)
        if self.on_change is not None:
            self.on_change(old, router)
        return True

    def publish(self, config: ExperimentSettings, *, source: str, actor: str,
                reason: str) -> Router:
        """Put ``config`` in force as a new version in the ledger, and here at once."""
        ledger = self._ledger
        if ledger is None:
            raise NotReadyError("the ledger is not open")
        candidate = Router.from_settings(config)
        if self._validate is not None:
            self._validate(candidate)
        with self._lock:
            version = ledger.publish_experiment(config, source=source, actor=actor,
                                                reason=reason)
            self._apply(version)
        return self.router
