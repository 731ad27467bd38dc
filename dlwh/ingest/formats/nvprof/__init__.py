"""nvprof: GPU traces (--print-gpu-trace/--print-api-trace) and --metrics/--events summaries."""
