"""Metric definitions (own registry) and drift statistics."""

from finmlops.monitoring.metrics import LATENCY_BUCKETS, Metrics, create_metrics

__all__ = ["LATENCY_BUCKETS", "Metrics", "create_metrics"]
