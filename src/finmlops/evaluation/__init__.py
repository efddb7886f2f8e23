"""Honest evaluation: walk-forward splits, classification metrics, backtests, PSR/DSR."""

# --- splits and classification metrics (walk-forward training) ---

# --- backtest, performance metrics, stress windows, cost sweep ---

__all__: list[str] = []
