"""Linux perf stat: CSV (-x), JSON (-j) and human text output, with and without -I intervals."""

TOOL = "Linux perf"  # the tool whose output these formats read (docs/formats.md)
