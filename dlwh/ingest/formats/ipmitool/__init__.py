"""ipmitool: dcmi power reading and sdr/sensor listings."""

TOOL = "ipmitool"  # the tool whose output these formats read (docs/formats.md)
