"""The data plane's writer side: what the ledger's group-commit writer calls, on its thread —
commit a batch with the other arms' scores, feed the drift monitors, count and report health.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from finmlops.errors import LedgerUnavailableError, ModelNotFoundError
from finmlops.ledger import Ledger, Served
from finmlops.monitoring.metrics import Metrics
from finmlops.serving._telemetry import Telemetry
from finmlops.serving.runtime import LoadedModel

log = logging.getLogger("finmlops.serving")


class CommitSide:
    """Mixed into :class:`~finmlops.serving.dataplane.DataPlane`: the callbacks its
    :class:`~finmlops.ledger.GroupCommitWriter` runs."""

    ledger: Ledger | None
    models: dict[str, LoadedModel]
    metrics: Metrics
    telemetry: Telemetry

    @property
    def ready(self) -> bool:
        """Whether the plane takes traffic (the data plane's own rule)."""
        raise NotImplementedError

    def _commit(self, batch: Sequence[Served], *, wait: bool = True) -> None:
        ledger = self.ledger
        if ledger is None:  # pragma: no cover - the writer starts after the ledger opens
            raise LedgerUnavailableError("the ledger is not open")
        extra = self._extra_scores(batch)
        ledger.record(batch, extra, wait=wait)
        self._observe(batch)

    def _commit_inline(self, batch: Sequence[Served]) -> None:
        """The loop's own commit (SQLite): never waits for a lock held elsewhere."""
        self._commit(batch, wait=False)

    def _extra_scores(self, batch: Sequence[Served]
                      ) -> dict[tuple[int, str], tuple[str, np.ndarray]]:
        """Every (request, other arm) score, one ONNX Runtime call per arm for the batch; an
        arm whose scoring fails leaves those predictions without its score (counted)."""
        by_arm: dict[str, list[int]] = {}
        for i, it in enumerate(batch):
            for arm in it.also_score:
                by_arm.setdefault(arm, []).append(i)
        out: dict[tuple[int, str], tuple[str, np.ndarray]] = {}
        for arm, idx in by_arm.items():
            model = self.models.get(arm)
            try:
                if model is None:
                    raise ModelNotFoundError(f"no model {arm!r}")
                probs = model.predict(np.concatenate([batch[i].x for i in idx]))
            except Exception:
                log.exception("shadow scoring with %s failed", arm)
                self.metrics.shadow_failures.labels(arm).inc(
                    sum(len(batch[i].prediction_ids) for i in idx))
                continue
            start = 0
            for i in idx:
                k = len(batch[i].prediction_ids)
                out[(i, arm)] = (model.version, probs[start:start + k])
                start += k
        return out

    def _observe(self, batch: Sequence[Served]) -> None:
        by_arm: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for it in batch:
            rows, probs = by_arm.setdefault(it.arm, ([], []))
            # the last two steps of each window: a smoothed feature's drift is tested on its
            # daily change, and each arm sees only the days routed to it
            rows.append(it.x[:, -2:, :])
            probs.append(it.probabilities)
        for arm, (rows, probs) in by_arm.items():
            try:
                self.telemetry.observe(arm, np.concatenate(rows), np.concatenate(probs))
            except Exception:
                log.exception("drift observation failed")

    def _probe(self) -> None:
        if self.ledger is not None:
            self.ledger.probe()

    def _ping(self) -> None:
        if self.ledger is not None:
            self.ledger.ping()

    def _committed(self, n: int, seconds: float) -> None:
        self.metrics.ledger_committed.inc(n)
        self.metrics.ledger_commit_seconds.observe(seconds)

    def _refused(self, reason: str, n: int) -> None:
        self.metrics.ledger_refused.labels("infer", reason).inc(n)

    def _health(self, healthy: bool) -> None:
        self.metrics.ledger_healthy.set(int(healthy))
        self.metrics.ready.set(int(self.ready))
