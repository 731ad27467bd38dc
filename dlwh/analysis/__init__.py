"""dlwh.analysis."""
