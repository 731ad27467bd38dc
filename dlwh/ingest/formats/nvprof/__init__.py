"""nvprof: GPU traces (--print-gpu-trace/--print-api-trace) and --metrics/--events summaries."""

TOOL = "nvprof"  # the tool whose output these formats read (docs/formats.md)
