"""Configuration: one validated settings tree, read from finmlops.yaml and FINMLOPS_* variables."""

from finmlops.config._evaluation import (
    CostSettings,
    EvaluationSettings,
    StressWindow,
)
from finmlops.config._serving import (
    ABTestSettings,
    DeploySettings,
    LedgerSettings,
    MonitoringSettings,
    ServeSettings,
    TokenSettings,
)
from finmlops.config.loader import load_settings
from finmlops.config.settings import (
    Candidate,
    DataSettings,
    ExperimentSettings,
    FeatureSettings,
    GBMSettings,
    Mirror,
    PortfolioSettings,
    ReportSettings,
    SearchSettings,
    Settings,
    TrackingSettings,
    TrainSettings,
    UniverseSettings,
    UniverseVariantSettings,
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
    "GBMSettings",
    "LedgerSettings",
    "Mirror",
    "MonitoringSettings",
    "PortfolioSettings",
    "ReportSettings",
    "SearchSettings",
    "ServeSettings",
    "Settings",
    "StressWindow",
    "TokenSettings",
    "TrackingSettings",
    "TrainSettings",
    "UniverseSettings",
    "UniverseVariantSettings",
    "VariantSettings",
    "load_settings",
    "public_dict",
]
