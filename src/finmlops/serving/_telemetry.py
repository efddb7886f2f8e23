"""The service's side of the metric contract: hot-path children, feedback and paired
counters, scrape-time gauges and drift monitors."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from finmlops.config import MonitoringSettings
from finmlops.ledger import Outcome
from finmlops.monitoring.metrics import Metrics
from finmlops.serving.router import Router
from finmlops.serving.runtime import LoadedModel

log = logging.getLogger("finmlops.serving")


class Telemetry:
    """Updates :class:`~finmlops.monitoring.metrics.Metrics` for one app."""

    def __init__(self, metrics: Metrics, monitoring: MonitoringSettings) -> None:
        self.metrics = metrics
        self.monitoring = monitoring
        self.last_prediction: dict[str, float] = {}
        self._children: dict[tuple[str, ...], Any] = {}
        self._drift: dict[str, Any] = {}

    def child(self, key: tuple[str, ...]) -> Any:
        """A cached labelled child (``("req"|"lat"|"pred", *labels)``): no label lookups per
        request."""
        got = self._children.get(key)
        if got is None:
            kind, *labels = key
            metric = {"req": self.metrics.requests, "lat": self.metrics.latency,
                      "pred": self.metrics.predictions}[kind]
            got = metric.labels(*labels)
            self._children[key] = got
        return got

    def count_predictions(self, experiment: str, arm: str, version: str, values: list[float],
                          threshold: float, *, request: bool = True) -> None:
        """Predicted classes, the request (unless ``request=False``: the arm served some rows
        of a request counted on its own), and the time of the last prediction."""
        up = sum(1 for v in values if v > threshold)
        if up:
            self.child(("pred", experiment, arm, version, "1")).inc(up)
        if len(values) - up:
            self.child(("pred", experiment, arm, version, "0")).inc(len(values) - up)
        if request:
            self.count_request(arm, version, experiment, arm)
        self.last_prediction[experiment] = time.time()

    def count_request(self, model: str, version: str, experiment: str, arm: str) -> None:
        """One answered inference request."""
        self.child(("req", model, version, experiment, arm, "200")).inc()

    def count_error(self, status: int) -> None:
        self.child(("req", "", "", "", "", str(status))).inc()

    def models_loaded(self, models: Mapping[str, LoadedModel], experiment: str) -> None:
        m = self.metrics
        for model in models.values():
            card = model.card
            m.model_info.labels(
                model=model.name, version=model.version, arm=model.name, experiment=experiment,
                alias=",".join(card.aliases or []) if card and card.aliases else model.name,
                data_version=card.data_version if card else "").set(1)
            if card is not None and card.trained_until:
                try:
                    day = dt.datetime.fromisoformat(card.trained_until)
                except ValueError:
                    pass
                else:
                    m.data_last_bar.labels(card.data_version).set(
                        day.replace(tzinfo=dt.UTC).timestamp())
            self._start_drift(model)

    def _start_drift(self, model: LoadedModel) -> None:
        """Models whose ``model.json`` carries a drift ``reference`` get a monitor."""
        from finmlops.monitoring.drift import DriftMonitor

        ref = model.card.reference if model.card is not None else None
        if ref is None or len(ref.get("feature_names", [])) != model.n_features:
            return
        mon = self.monitoring
        try:
            self._drift[model.name] = DriftMonitor(
                ref, window=mon.drift_window_days, bins=mon.bins,
                psi_threshold=mon.psi_threshold, ks_alpha=mon.ks_alpha)
        except Exception:
            log.exception("drift monitor for %s not started", model.name)

    def observe(self, arm: str, rows: np.ndarray, probabilities: np.ndarray) -> None:
        """Writer thread: last-step raw features (and outputs) of served requests."""
        monitor = self._drift.get(arm)
        if monitor is not None:
            monitor.observe(rows)
            monitor.observe_predictions(probabilities)

    def weights(self, old: Router | None, router: Router) -> None:
        self.metrics.experiment_version.labels(router.experiment).set(router.version)
        gauge = self.metrics.experiment_weight
        if old is not None:
            for arm in old.arms:
                if arm not in router.arms:
                    gauge.labels(old.experiment, arm).set(0)
        for arm, share in router.shares().items():
            gauge.labels(router.experiment, arm).set(share)

    def count_outcomes(self, outcomes: list[Outcome], reference: str | None) -> None:
        """Feedback counters for the served arm; paired counters of every other scored arm
        against ``reference`` (the experiment's default)."""
        m = self.metrics
        by_request: dict[str, list[Outcome]] = {}
        for o in outcomes:
            by_request.setdefault(o.prediction_id, []).append(o)
        now = time.time()
        for rows in by_request.values():
            exp = rows[0].experiment or ""
            for o in rows:
                if o.served:
                    m.feedback.labels(exp, o.arm).inc()
                    if o.hit:
                        m.feedback_hits.labels(exp, o.arm).inc()
                    m.feedback_return_sum.labels(exp, o.arm).inc(o.net_return)
                    m.feedback_return_sq_sum.labels(exp, o.arm).inc(o.net_return ** 2)
            m.last_feedback.labels(exp).set(now)
            ref = next((o for o in rows if o.arm == reference), None)
            if ref is None or reference is None or not exp:
                continue
            for o in rows:
                if o.arm == reference:
                    continue
                labels = (exp, o.arm, reference)
                m.paired.labels(*labels).inc()
                if o.hit != ref.hit:
                    m.paired_discordant.labels(*labels, "arm" if o.hit else "reference").inc()
                diff = o.net_return - ref.net_return
                m.paired_diff_sum.labels(*labels).inc(diff)
                m.paired_diff_sq_sum.labels(*labels).inc(diff * diff)

    def ledger_summary(self, experiment: str, outcomes: Any, reference: str | None,
                       last_outcome: float | None) -> None:
        """Publish the experiment as the ledger holds it: per-arm served sums and paired sums
        against ``reference`` (what the A/B rules and dashboards read)."""
        m = self.metrics
        served = outcomes[outcomes["served"]]
        for arm, g in served.groupby("arm"):
            r = g["net_return"].to_numpy(dtype=float)
            m.ledger_arm_outcomes.labels(experiment, arm).set(len(g))
            m.ledger_arm_hits.labels(experiment, arm).set(int(g["hit"].sum()))
            m.ledger_arm_return_sum.labels(experiment, arm).set(float(r.sum()))
            m.ledger_arm_return_sq_sum.labels(experiment, arm).set(float((r * r).sum()))
        if reference is not None:
            ref = outcomes[outcomes["arm"] == reference]
            for arm, g in outcomes[outcomes["arm"] != reference].groupby("arm"):
                j = g.merge(ref, on="request_id", how="inner", suffixes=("", "_ref"))
                labels = (experiment, arm, reference)
                d = (j["net_return"] - j["net_return_ref"]).to_numpy(dtype=float)
                m.ledger_paired_outcomes.labels(*labels).set(len(j))
                m.ledger_paired_discordant.labels(*labels, "arm").set(
                    int((j["hit"] & ~j["hit_ref"]).sum()))
                m.ledger_paired_discordant.labels(*labels, "reference").set(
                    int((~j["hit"] & j["hit_ref"]).sum()))
                m.ledger_paired_diff_sum.labels(*labels).set(float(d.sum()))
                m.ledger_paired_diff_sq_sum.labels(*labels).set(float((d * d).sum()))
        if last_outcome is not None:
            m.ledger_last_outcome.labels(experiment).set(last_outcome)

    def render(self, pending: int) -> bytes:
        """Refresh scrape-time gauges (ledger queue, last prediction, drift) and render."""
        from finmlops.monitoring.drift import publish

        m = self.metrics
        m.ledger_queue.set(pending)
        for exp, ts in list(self.last_prediction.items()):
            m.last_prediction.labels(exp).set(ts)
        for name, monitor in list(self._drift.items()):
            try:
                publish(m, name, monitor.snapshot())
            except Exception:
                log.exception("drift snapshot of %s failed", name)
        return m.render()
