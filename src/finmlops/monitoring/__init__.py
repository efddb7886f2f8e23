"""Metric definitions (own registry) and drift statistics."""

from finmlops.monitoring.drift import (
    PREDICTION,
    DriftMonitor,
    DriftRow,
    build_reference,
    compare,
    ks,
    max_psi,
    proportions,
    psi,
    publish,
)
from finmlops.monitoring.metrics import LATENCY_BUCKETS, Metrics, create_metrics

__all__ = [
    "LATENCY_BUCKETS",
    "PREDICTION",
    "DriftMonitor",
    "DriftRow",
    "Metrics",
    "build_reference",
    "compare",
    "create_metrics",
    "ks",
    "max_psi",
    "proportions",
    "psi",
    "publish",
]
