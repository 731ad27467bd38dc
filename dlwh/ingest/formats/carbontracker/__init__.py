"""carbontracker: its log files and stdout."""

TOOL = "carbontracker"  # the tool whose output these formats read (docs/formats.md)
