"""`dlwh sql` on a big result: wall time and peak memory of the whole command (docs/performance.md, "SQL").

A warehouse with ``--rows`` power samples (default 2 million: 4 GPUs, 100 ms) filled by bulk INSERT;
timed, each in its own child process (wall time from the parent, CPU time and peak RSS from os.wait4):

* ``dlwh sql "SELECT * FROM samples" --max-rows 20``  (a table of the first 20 rows)
* ``dlwh sql "SELECT * FROM samples" --csv  > /dev/null``  (every row)
* ``dlwh sql "SELECT * FROM samples" --json > /dev/null``  (every row)
* ``dlwh sql "SELECT * FROM samples" --csv | head -1``     (a closed pipe: exit code and stderr)

``--checkout DIR`` runs another checkout's dlwh (e.g. a worktree of an earlier commit) on the same
warehouse, for a before/after on one machine; its warehouse is a copy (older code may write to it).
Steps are repeated ``--repeat`` times; the medians are reported. Data goes to benchmarks/_data/
(git-ignored) and is reused when present.

    python benchmarks/bench_sql.py                     # 2 million rows
    python benchmarks/bench_sql.py --rows 100000 --repeat 1
    python benchmarks/bench_sql.py --checkout /tmp/dlwh-before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "_data"
QUERY = "SELECT * FROM samples"


def make_warehouse(rows: int) -> Path:
    """A warehouse holding ``rows`` power samples of one run (4 GPUs at 100 ms); reused when present."""
    sys.path.insert(0, str(ROOT))
    from dlwh.warehouse import SCHEMA_VERSION, transaction, warehouse

    path = DATA / f"sql-{rows}-v{SCHEMA_VERSION}.duckdb"  # read-only dlwh sql refuses an older schema
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    with warehouse(tmp) as con, transaction(con):
        con.execute("INSERT INTO runs (run_id, source, timezone) VALUES ('bench', 'file', 'UTC')")
        con.execute("INSERT INTO sensors (sensor_id, run_id, file_sha256, kind, name, device_index, tool) "
                    "SELECT 'bench/gpu' || i, 'bench', 'sha', 'gpu', 'GPU ' || i, i, 'nvml' FROM range(4) t(i)")
        con.execute(
            "INSERT INTO samples (sensor_id, ts, metric, unit, value, duration_s, file_sha256) "
            "SELECT 'bench/gpu' || (i % 4), TIMESTAMP '2026-11-21 10:15:00' + to_microseconds((i // 4) * 100000), "
            "'power', 'W', 100 + (i % 997) * 0.25, 0.1, 'sha' FROM range(?) t(i)", [rows])
    os.replace(tmp, path)
    return path


def _run(cmd: list[str] | str, env: dict, cwd: Path, shell: bool = False, stdout=subprocess.DEVNULL) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, shell=shell, stdout=stdout, stderr=subprocess.PIPE,
                            executable="/bin/bash" if shell else None)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "exit": os.waitstatus_to_exitcode(status), "stderr": err.decode(errors="replace").strip()[-300:]}


def bench(db: Path, checkout: Path, repeat: int) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "DLWH_CACHE_DIR": "off"}  # run in checkout: its dlwh first
    dlwh = [sys.executable, "-c", "from dlwh.cli import main; main()"]
    steps = {
        "table --max-rows 20": [*dlwh, "sql", QUERY, "--max-rows", "20", "--db", str(db)],
        "--csv (all rows)": [*dlwh, "sql", QUERY, "--csv", "--db", str(db)],
        "--json (all rows)": [*dlwh, "sql", QUERY, "--json", "--db", str(db)],
    }
    results: dict[str, dict] = {}
    for name, cmd in steps.items():
        runs = [_run(cmd, env, checkout) for _ in range(repeat)]
        results[name] = {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "cpu_s", "peak_rss_mib")}
        results[name].update(exit=runs[-1]["exit"], stderr=runs[-1]["stderr"])
    quoted = " ".join(f"'{c}'" for c in steps["--csv (all rows)"])
    piped = _run(f"set -o pipefail; {quoted} | head -1 > /dev/null", env, checkout, shell=True)
    results["--csv | head -1"] = piped
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the dlwh checkout to time (default: this one)")
    args = parser.parse_args()
    db = make_warehouse(args.rows)
    if args.checkout.resolve() != ROOT:
        copy = DATA / f"sql-{args.rows}-copy.duckdb"
        shutil.copyfile(db, copy)
        db = copy
    results = bench(db, args.checkout.resolve(), args.repeat)
    print(json.dumps({"rows": args.rows, "checkout": str(args.checkout), "python": platform.python_version(),
                      "cpus": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
