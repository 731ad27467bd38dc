"""dlwh.ingest."""
