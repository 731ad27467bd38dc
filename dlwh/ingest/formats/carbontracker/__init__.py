"""carbontracker: its log files and stdout."""
