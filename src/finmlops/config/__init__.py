"""Configuration: one validated settings tree, read from finmlops.yaml and FINMLOPS_* variables."""

from finmlops.config.loader import load_settings
from finmlops.config.settings import (
    ABTestSettings,
    Candidate,
    CostSettings,
    DataSettings,
    DeploySettings,
    EvaluationSettings,
    ExperimentSettings,
    FeatureSettings,
    Mirror,
    MonitoringSettings,
    ServeSettings,
    Settings,
    StressWindow,
    TrackingSettings,
    TrainSettings,
    VariantSettings,
    public_dict,
)

__all__ = [
    "ABTestSettings",
    "Candidate",
    "CostSettings",
    "DataSettings",
    "DeploySettings",
    "EvaluationSettings",
    "ExperimentSettings",
    "FeatureSettings",
    "Mirror",
    "MonitoringSettings",
    "ServeSettings",
    "Settings",
    "StressWindow",
    "TrackingSettings",
    "TrainSettings",
    "VariantSettings",
    "load_settings",
    "public_dict",
]
