"""Research at universe scale: cross-sectional studies and hyper-parameter searches whose
every trial enters the trial ledger. Like ``pipeline``, it may import every other package."""

from finmlops.research.run import run_universe, sharpe_histogram, study_dir
from finmlops.research.search import SPACE, run_search, storage_url
from finmlops.research.study import STUDY, prepare, trial_config, universe_key

__all__ = [
    "SPACE",
    "STUDY",
    "prepare",
    "run_search",
    "run_universe",
    "sharpe_histogram",
    "storage_url",
    "study_dir",
    "trial_config",
    "universe_key",
]
