"""macOS powermetrics: text and plist output."""

TOOL = "macOS powermetrics"  # the tool whose output these formats read (docs/formats.md)
