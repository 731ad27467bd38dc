"""dlwh's own recordings: run.json, nvml.csv samples and spans.jsonl."""
