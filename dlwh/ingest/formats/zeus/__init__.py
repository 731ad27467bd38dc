"""Zeus: per-power-limit profiles and summary files of its public sweeps."""

TOOL = "Zeus"  # the tool whose output these formats read (docs/formats.md)
