"""dlwh.collect."""
