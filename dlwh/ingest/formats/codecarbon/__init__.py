"""CodeCarbon: emissions.csv."""

TOOL = "CodeCarbon"  # the tool whose output these formats read (docs/formats.md)
