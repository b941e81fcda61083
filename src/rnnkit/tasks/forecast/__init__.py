"""Time-series forecasting: accuracy metrics and the naive, seasonal-naive and AR(p) baselines."""
