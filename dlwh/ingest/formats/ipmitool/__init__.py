"""ipmitool: dcmi power reading and sdr/sensor listings."""
