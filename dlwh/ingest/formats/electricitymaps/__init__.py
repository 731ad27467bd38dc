"""Electricity Maps: carbon-intensity API JSON and data-portal CSV exports."""

TOOL = "Electricity Maps"  # the tool whose output these formats read (docs/formats.md)
