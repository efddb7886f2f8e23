"""Features and labels from bars: pure, vectorised over tickers, no look-ahead."""

from finmlops.features.matrix import (
    CONTEXT_FEATURES,
    CORE_FEATURES,
    KEY_COLUMNS,
    LABEL_COLUMNS,
    OWN_FEATURES,
    FeatureSet,
    build_features,
    feature_names,
    own_features,
    training_mask,
)
from finmlops.features.windows import make_windows, window_ends

__all__ = [
    "CONTEXT_FEATURES",
    "CORE_FEATURES",
    "KEY_COLUMNS",
    "LABEL_COLUMNS",
    "OWN_FEATURES",
    "FeatureSet",
    "build_features",
    "feature_names",
    "make_windows",
    "own_features",
    "training_mask",
    "window_ends",
]
