"""Every Prometheus metric the service exports, on a registry passed in (never the global one).

This module is the contract between the service (which updates these), the alert rules and
dashboards in ``deploy/`` (which query them) and the A/B statistics computed from Prometheus.
Sums of returns can fall, so they are gauges that accumulate; everything that only grows is
a counter. Feedback counters count each request's outcome once (feedback is idempotent);
``finmlops_feedback_*`` follow the arm that served, ``finmlops_paired_*`` compare every other
scored arm (shadow scoring or the mirror) with the experiment's ``default`` arm on the same
requests. Requests rejected before routing count with empty ``model``/``arm`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
    ready: Gauge
    log_queue: Gauge
    log_written: Counter
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
            arm, registry=reg),
        feedback_return_sq_sum=Gauge(
            "finmlops_feedback_return_sq_sum", "Sum of squared net strategy returns per arm.",
            arm, registry=reg),
        paired=Counter(
            "finmlops_paired_outcomes", "Requests with outcomes scored by both arm and "
            "reference (shadow scoring or mirror).", pair, registry=reg),
        paired_discordant=Counter(
            "finmlops_paired_discordant", "Paired outcomes where exactly one side was right "
            "(winner=arm|reference), McNemar's counts.", [*pair, "winner"], registry=reg),
        paired_diff_sum=Gauge(
            "finmlops_paired_return_diff_sum", "Sum of (arm - reference) net strategy returns.",
            pair, registry=reg),
        paired_diff_sq_sum=Gauge(
            "finmlops_paired_return_diff_sq_sum", "Sum of squared paired return differences.",
            pair, registry=reg),
        model_info=Gauge(
            "finmlops_model_info", "1 for each loaded model (labels describe it).",
            ["model", "version", "arm", "experiment", "alias", "data_version"], registry=reg),
        experiment_weight=Gauge(
            "finmlops_experiment_weight_ratio", "Configured traffic share of each arm (0-1).",
            arm, registry=reg),
        ready=Gauge("finmlops_ready", "1 when every model is loaded and serving.",
                    registry=reg),
        log_queue=Gauge("finmlops_prediction_log_queue", "Predictions waiting to be written.",
                        registry=reg),
        log_written=Counter("finmlops_prediction_log_written", "Rows written to the "
                            "prediction log.", registry=reg),
        last_prediction=Gauge(
            "finmlops_last_prediction_timestamp_seconds", "Unix time of the last prediction.",
            ["experiment"], registry=reg),
        last_feedback=Gauge(
            "finmlops_last_feedback_timestamp_seconds", "Unix time of the last feedback.",
            ["experiment"], registry=reg),
        data_last_bar=Gauge(
            "finmlops_data_last_bar_timestamp_seconds", "Unix time of the newest bar in the "
            "dataset the served models were trained on, or the newest ingested.",
            ["dataset"], registry=reg),
        drift_psi=Gauge(
            "finmlops_drift_psi", "Population stability index of a feature (or the prediction) "
            "live vs the training reference.", ["model", "feature"], registry=reg),
        drift_ks=Gauge(
            "finmlops_drift_ks_statistic", "Kolmogorov-Smirnov statistic live vs reference.",
            ["model", "feature"], registry=reg),
        drift_alarm=Gauge(
            "finmlops_drift_alarm", "1 when a feature (family-wise) or the prediction drifted "
            "beyond the calibrated null at the configured level.", ["model", "feature"],
            registry=reg),
        # --- drift against the calibrated null (finmlops.monitoring.drift) ---
        drift_p_value=Gauge(
            "finmlops_drift_p_value", "Calibrated p-value of a feature (or the prediction): "
            "share of reference windows of the same length at least as far in KS distance.",
            ["model", "feature"], registry=reg),
        drift_unusual=Gauge(
            "finmlops_drift_unusual_features", "Features whose calibrated p-value is at most "
            "the configured level.", ["model"], registry=reg),
        drift_unusual_threshold=Gauge(
            "finmlops_drift_unusual_threshold", "Count of unusual features at which the "
            "aggregate drift alarm fires (calibrated on reference windows; NaN: uncalibrated).",
            ["model"], registry=reg),
        drift_aggregate_alarm=Gauge(
            "finmlops_drift_aggregate_alarm", "1 when more features are unusual than the "
            "reference's own windows allow at the configured level.", ["model"], registry=reg),
    )
