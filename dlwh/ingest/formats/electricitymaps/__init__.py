"""Electricity Maps: carbon-intensity API JSON and data-portal CSV exports."""
