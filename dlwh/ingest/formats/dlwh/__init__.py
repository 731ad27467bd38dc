"""dlwh's own recordings: run.json, nvml.csv samples and spans.jsonl."""

TOOL = "dlwh collect"  # the tool whose output these formats read (docs/formats.md)
