"""dlwh.models."""
