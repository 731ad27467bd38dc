"""Linux perf stat: CSV (-x), JSON (-j) and human text output, with and without -I intervals."""
