"""Features and labels from bars on a master trading calendar: pure, vectorised over tickers,
no look-ahead."""

from finmlops.features.calendar import SESSION, align, find_gaps, master_calendar
from finmlops.features.matrix import (
    CONTEXT_FEATURES,
    CORE_FEATURES,
    KEY_COLUMNS,
    LABEL_COLUMNS,
    OWN_FEATURES,
    FeatureMatrix,
    FeatureSet,
    build_features,
    feature_matrix,
    feature_names,
    gap_warning,
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
    "SESSION",
    "FeatureMatrix",
    "FeatureSet",
    "align",
    "build_features",
    "feature_matrix",
    "feature_names",
    "find_gaps",
    "gap_warning",
    "make_windows",
    "master_calendar",
    "own_features",
    "training_mask",
    "window_ends",
]
