"""A recording cut mid-line against the same recording whole: `ingest_paths` time, in-process.

The file is bench_ingest's nvidia-smi CSV (4 GPUs, 100 ms, the collector's fields with units); the cut
copy is the same bytes plus the first 40 bytes of a row, as `nvidia-smi -l` killed mid-write leaves it.
Runs alternate (whole, cut) so that a busy machine slows both alike. docs/performance.md has the figures.

    python benchmarks/bench_cut_log.py --rows 500000 --repeat 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ingest  # noqa: E402

from dlwh.ingest.loader import IngestOptions, ingest_paths  # noqa: E402
from dlwh.warehouse import open_warehouse  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="dlwh-cut-"))
    try:
        whole = bench_ingest.make_nvidia_smi_csv(args.rows, folder / "whole.csv")
        data = whole.read_bytes()
        cut = folder / "cut.csv"
        cut.write_bytes(data + data.split(b"\n")[-2][:40])
        for run in range(args.repeat):
            for path in (whole, cut):
                con = open_warehouse(folder / f"w-{run}-{path.stem}.duckdb")
                wall, cpu = time.perf_counter(), time.process_time()
                (result,) = ingest_paths(con, [path], IngestOptions(tz="Europe/Berlin"))
                print(f"{path.name}: {result.outcome}, {result.rows:,} samples, {time.perf_counter() - wall:.2f} s wall, "
                      f"{time.process_time() - cpu:.2f} s CPU")
                con.close()
    finally:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
