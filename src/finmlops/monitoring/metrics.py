"""Every Prometheus metric the service exports, on a registry passed in (never the global one).

This module is the contract between the service (which updates these), the alert rules and
dashboards in ``deploy/`` (which query them) and the A/B statistics computed from Prometheus.
Sums of returns can fall, so they are gauges that accumulate; everything that only grows is
a counter. Feedback counters count each request's outcome once (feedback is idempotent);
``finmlops_feedback_*`` follow the arm that served, ``finmlops_paired_*`` compare every other
scored arm (shadow scoring or the mirror) with the experiment's ``default`` arm on the same
requests. Requests rejected before routing count with empty ``model``/``arm`` labels.

With several worker processes (``finmlops serve --workers N``) the metrics use
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``finmlops serve``
before the workers start): every scrape sums every worker's values, including those of workers
that have exited, so counters never go backwards however the workers are restarted. Each
gauge says how its per-worker values combine (``multiprocess_mode``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    predictions: Counter
    feedback: Counter
    feedback_hits: Counter
    feedback_return_sum: Gauge
    feedback_return_sq_sum: Gauge
    paired: Counter
    paired_discordant: Counter
    paired_diff_sum: Gauge
    paired_diff_sq_sum: Gauge
    model_info: Gauge
    experiment_weight: Gauge
    experiment_version: Gauge
    ready: Gauge
    ledger_queue: Gauge
    ledger_committed: Counter
    ledger_commit_seconds: Histogram
    ledger_refused: Counter
    ledger_healthy: Gauge
    shadow_failures: Counter
    feedback_requests: Counter
    ledger_arm_outcomes: Gauge
    ledger_arm_hits: Gauge
    ledger_arm_return_sum: Gauge
    ledger_arm_return_sq_sum: Gauge
    ledger_paired_outcomes: Gauge
    ledger_paired_discordant: Gauge
    ledger_paired_diff_sum: Gauge
    ledger_paired_diff_sq_sum: Gauge
    ledger_last_outcome: Gauge
    last_prediction: Gauge
    last_feedback: Gauge
    data_last_bar: Gauge
    drift_psi: Gauge
    drift_ks: Gauge
    drift_alarm: Gauge
    # --- drift against the calibrated null (finmlops.monitoring.drift) ---
    drift_p_value: Gauge
    drift_unusual: Gauge
    drift_unusual_threshold: Gauge
    drift_aggregate_alarm: Gauge

    @property
    def multiprocess(self) -> bool:
        return bool(os.environ.get(MULTIPROC_ENV))

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's registry, or every worker's values
        combined in multiprocess mode."""
        from prometheus_client import generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            out: bytes = generate_latest(combined)
            return out
        text: bytes = generate_latest(self.registry)
        return text


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create the metric set on ``registry`` (a fresh one by default)."""
    reg = registry if registry is not None else CollectorRegistry(auto_describe=True)
    arm = ["experiment", "arm"]
    pair = ["experiment", "arm", "reference"]
    return Metrics(
        registry=reg,
        requests=Counter(
            "finmlops_requests", "Inference requests by model, version, experiment, arm and "
            "HTTP status.", ["model", "version", "experiment", "arm", "status"], registry=reg),
        latency=Histogram(
            "finmlops_request_duration_seconds", "Inference latency inside the service.",
            arm, buckets=LATENCY_BUCKETS, registry=reg),
        predictions=Counter(
            "finmlops_predictions", "Predicted classes served, by arm.",
            [*arm, "version", "predicted_class"], registry=reg),
        feedback=Counter(
            "finmlops_feedback", "Realised outcomes joined to served predictions.", arm,
            registry=reg),
        feedback_hits=Counter(
            "finmlops_feedback_hits", "Outcomes whose direction the arm called right.", arm,
            registry=reg),
        feedback_return_sum=Gauge(
            "finmlops_feedback_return_sum", "Sum of net strategy returns of following the arm.",
            arm, registry=reg, multiprocess_mode="sum"),
        feedback_return_sq_sum=Gauge(
            "finmlops_feedback_return_sq_sum", "Sum of squared net strategy returns per arm.",
            arm, registry=reg, multiprocess_mode="sum"),
        paired=Counter(
            "finmlops_paired_outcomes", "Requests with outcomes scored by both arm and "
            "reference (shadow scoring or mirror).", pair, registry=reg),
        paired_discordant=Counter(
            "finmlops_paired_discordant", "Paired outcomes where exactly one side was right "
            "(winner=arm|reference), McNemar's counts.", [*pair, "winner"], registry=reg),
        paired_diff_sum=Gauge(
            "finmlops_paired_return_diff_sum", "Sum of (arm - reference) net strategy returns.",
            pair, registry=reg, multiprocess_mode="sum"),
        paired_diff_sq_sum=Gauge(
            "finmlops_paired_return_diff_sq_sum", "Sum of squared paired return differences.",
            pair, registry=reg, multiprocess_mode="sum"),
        model_info=Gauge(
            "finmlops_model_info", "1 for each loaded model (labels describe it).",
            ["model", "version", "arm", "experiment", "alias", "data_version"], registry=reg,
            multiprocess_mode="livemax"),
        experiment_weight=Gauge(
            "finmlops_experiment_weight_ratio", "Traffic share of each arm (0-1) in the "
            "experiment version in force.", arm, registry=reg, multiprocess_mode="mostrecent"),
        experiment_version=Gauge(
            "finmlops_experiment_version", "The experiment version in force (from the ledger).",
            ["experiment"], registry=reg, multiprocess_mode="livemin"),
        ready=Gauge("finmlops_ready", "1 when the models are loaded, the experiment version is "
                    "known and the ledger takes writes.", registry=reg,
                    multiprocess_mode="livemin"),
        ledger_queue=Gauge("finmlops_ledger_queue", "Predictions waiting for their commit.",
                           registry=reg, multiprocess_mode="livesum"),
        ledger_committed=Counter("finmlops_ledger_committed", "Requests whose predictions "
                                 "were committed to the ledger (each answered after its "
                                 "commit).", registry=reg),
        ledger_commit_seconds=Histogram(
            "finmlops_ledger_commit_duration_seconds", "Time of one group commit.",
            buckets=LATENCY_BUCKETS, registry=reg),
        ledger_refused=Counter(
            "finmlops_ledger_refused", "Requests refused because the ledger could not take "
            "them (answered 503), by operation and reason (queue_full, unavailable, "
            "write_failed, shutdown).", ["operation", "reason"], registry=reg),
        ledger_healthy=Gauge("finmlops_ledger_healthy", "1 while the ledger takes writes.",
                             registry=reg, multiprocess_mode="livemin"),
        shadow_failures=Counter(
            "finmlops_shadow_failures", "Predictions committed without an arm's shadow or "
            "mirror score (that arm's scoring failed); they leave the paired statistics.",
            ["arm"], registry=reg),
        feedback_requests=Counter(
            "finmlops_feedback_requests", "Feedback requests by HTTP status (409: an outcome "
            "conflicted with the recorded one).", ["status"], registry=reg),
        # The experiment as the ledger holds it (every outcome, however it was recorded),
        # refreshed every ledger.summary_interval_s; every replica exports the same values.
        ledger_arm_outcomes=Gauge(
            "finmlops_ledger_arm_outcomes", "Served outcomes per arm in the ledger (pinned "
            "excluded).", arm, registry=reg, multiprocess_mode="max"),
        ledger_arm_hits=Gauge(
            "finmlops_ledger_arm_hits", "Served outcomes per arm whose direction was right.",
            arm, registry=reg, multiprocess_mode="max"),
        ledger_arm_return_sum=Gauge(
            "finmlops_ledger_arm_return_sum", "Sum of served net returns per arm (the "
            "backtest's position-and-cost rule).", arm, registry=reg,
            multiprocess_mode="mostrecent"),
        ledger_arm_return_sq_sum=Gauge(
            "finmlops_ledger_arm_return_sq_sum", "Sum of squared served net returns per arm.",
            arm, registry=reg, multiprocess_mode="max"),
        ledger_paired_outcomes=Gauge(
            "finmlops_ledger_paired_outcomes", "Outcomes scored by both arm and reference.",
            pair, registry=reg, multiprocess_mode="max"),
        ledger_paired_discordant=Gauge(
            "finmlops_ledger_paired_discordant", "Paired outcomes where exactly one side was "
            "right.", [*pair, "winner"], registry=reg, multiprocess_mode="max"),
        ledger_paired_diff_sum=Gauge(
            "finmlops_ledger_paired_return_diff_sum", "Sum of (arm - reference) net returns.",
            pair, registry=reg, multiprocess_mode="mostrecent"),
        ledger_paired_diff_sq_sum=Gauge(
            "finmlops_ledger_paired_return_diff_sq_sum", "Sum of squared paired differences.",
            pair, registry=reg, multiprocess_mode="max"),
        ledger_last_outcome=Gauge(
            "finmlops_ledger_last_outcome_timestamp_seconds", "Unix time of the newest outcome "
            "in the ledger.", ["experiment"], registry=reg, multiprocess_mode="max"),
        last_prediction=Gauge(
            "finmlops_last_prediction_timestamp_seconds", "Unix time of the last prediction.",
            ["experiment"], registry=reg, multiprocess_mode="max"),
        last_feedback=Gauge(
            "finmlops_last_feedback_timestamp_seconds", "Unix time of the last feedback.",
            ["experiment"], registry=reg, multiprocess_mode="max"),
        data_last_bar=Gauge(
            "finmlops_data_last_bar_timestamp_seconds", "Unix time of the newest bar in the "
            "dataset the served models were trained on, or the newest ingested.",
            ["dataset"], registry=reg, multiprocess_mode="max"),
        drift_psi=Gauge(
            "finmlops_drift_psi", "Population stability index of a feature (or the prediction) "
            "live vs the training reference.", ["model", "feature"], registry=reg,
            multiprocess_mode="mostrecent"),
        drift_ks=Gauge(
            "finmlops_drift_ks_statistic", "Kolmogorov-Smirnov statistic live vs reference.",
            ["model", "feature"], registry=reg, multiprocess_mode="mostrecent"),
        drift_alarm=Gauge(
            "finmlops_drift_alarm", "1 when a feature (family-wise) or the prediction drifted "
            "beyond the calibrated null at the configured level.", ["model", "feature"],
            registry=reg, multiprocess_mode="max"),
        # --- drift against the calibrated null (finmlops.monitoring.drift) ---
        drift_p_value=Gauge(
            "finmlops_drift_p_value", "Calibrated p-value of a feature (or the prediction): "
            "share of reference windows of the same length at least as far in KS distance.",
            ["model", "feature"], registry=reg, multiprocess_mode="mostrecent"),
        drift_unusual=Gauge(
            "finmlops_drift_unusual_features", "Features whose calibrated p-value is at most "
            "the configured level.", ["model"], registry=reg, multiprocess_mode="max"),
        drift_unusual_threshold=Gauge(
            "finmlops_drift_unusual_threshold", "Count of unusual features at which the "
            "aggregate drift alarm fires (calibrated on reference windows; NaN: uncalibrated).",
            ["model"], registry=reg, multiprocess_mode="mostrecent"),
        drift_aggregate_alarm=Gauge(
            "finmlops_drift_aggregate_alarm", "1 when more features are unusual than the "
            "reference's own windows allow at the configured level.", ["model"], registry=reg,
            multiprocess_mode="max"),
    )
