"""nvidia-smi: --query-gpu CSV logs and dmon output."""

TOOL = "nvidia-smi"  # the tool whose output these formats read (docs/formats.md)
