"""Ingest speed benchmark: `dlwh ingest` against DuckDB's own read_csv of the same file, and span_energy.

Three parts (docs/performance.md, "Ingest", has the figures and the targets):

* nvidia-smi: a generated CSV as the collector records it (``nvidia-smi --query-gpu=index,uuid,timestamp,
  power.draw,...,memory.used --format=csv -lms 100``: units in header and values), 4 GPUs, 100 ms,
  ``--rows`` rows (default 10 million). Timed: ``CREATE TABLE AS SELECT * FROM read_csv(file)`` into a
  fresh DuckDB file (the reference), then ``dlwh ingest file --db fresh.duckdb``.
* perf: a generated ``perf stat -a -x, -I 100`` file with ``--perf-lines`` lines (default 1 million),
  5 events per interval (cycles, instructions, cache-misses, power/energy-pkg/, power/energy-ram/),
  timed the same way (ingest anchored with --start).
* span_energy: a warehouse with ``--samples`` power samples (default 10 million: 4 GPUs x 2.5 million,
  100 ms) and ``--spans`` spans (default 100,000: epochs of steps that tile the run), filled by bulk
  INSERT from generated relations; timed: ``SELECT sum(energy_j), count(*) FROM span_energy``.

Every timed step runs in its own child process: wall time from the parent, CPU time and peak RSS from
os.wait4 (the child's own rusage). Besides the whole ``dlwh ingest`` process, each file is also timed
in-process: ``ingest_paths`` into a fresh, migrated warehouse against the ``CREATE TABLE ... read_csv``
statement alone (neither counts process start, imports or creating the database). Steps are repeated ``--repeat`` times, alternating reference and
ingest so that a busy machine slows both alike; the medians are reported. Data goes to
benchmarks/_data/ (git-ignored) and is reused when present.

    python benchmarks/bench_ingest.py                      # the full benchmark (~3 min on 2 cores)
    python benchmarks/bench_ingest.py --rows 100000 --perf-lines 10000 --samples 100000 --spans 1000
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
DATA = HERE / "_data"

NVSMI_FIELDS = ("index,uuid,timestamp,power.draw,power.draw.instant,power.limit,enforced.power.limit,"
                "clocks.sm,clocks.mem,clocks.gr,temperature.gpu,utilization.gpu,utilization.memory,memory.used")
NVSMI_HEADER = ("index, uuid, timestamp, power.draw [W], power.draw.instant [W], power.limit [W], "
                "enforced.power.limit [W], clocks.current.sm [MHz], clocks.current.memory [MHz], "
                "clocks.current.graphics [MHz], temperature.gpu, utilization.gpu [%], utilization.memory [%], "
                "memory.used [MiB]")
NVSMI_METRICS = 11  # numeric fields in NVSMI_FIELDS, one sample each per row
T0 = "2026-11-21 10:15:00"
PERF_EVENTS = (("cycles", ""), ("instructions", ""), ("cache-misses", ""),
               ("power/energy-pkg/", "Joules"), ("power/energy-ram/", "Joules"))


# ------------------------------------------------------------------------------------------ data
def _copy_lines(con, select: str, out: Path, header: str | None = None) -> None:
    """Write one VARCHAR column ``line`` of ``select`` to ``out`` as raw text lines (vectorised COPY)."""
    body = out.with_suffix(out.suffix + ".body")
    con.execute(f"COPY ({select}) TO '{body}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\t')")
    with out.open("wb") as handle:
        if header is not None:
            handle.write((header + "\n").encode())
        with body.open("rb") as src:
            shutil.copyfileobj(src, handle, 1 << 24)
    body.unlink()


def make_nvidia_smi_csv(rows: int, out: Path) -> Path:
    """An nvidia-smi --query-gpu CSV of ``rows`` rows: 4 GPUs, one row each every 100 ms (local time)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    # a GPU's row comes ~1 ms after the previous GPU's; power varies slowly with noise; units as printed
    select = f"""
        SELECT (i % 4)::VARCHAR || ', GPU-' || md5((i % 4)::VARCHAR)[1:8] || '-4d2e-9c1b-' || md5((i % 4)::VARCHAR)[9:12]
          || '-' || md5((i % 4)::VARCHAR)[13:24] || ', '
          || strftime(TIMESTAMP '{T0}' + to_microseconds(((i // 4) * 100000 + (i % 4) * 1000 + hash(i) % 700)::BIGINT),
                      '%Y/%m/%d %H:%M:%S.%g') || ', '
          || printf('%.2f W', 300 + 250 * sin(i / 40000.0) + (hash(i) % 2000) / 100.0) || ', '
          || printf('%.2f W', 300 + 250 * sin(i / 40000.0) + (hash(i * 7) % 6000) / 100.0)
          || ', 700.00 W, 700.00 W, '
          || (1980 - (hash(i) % 4) * 15)::VARCHAR || ' MHz, 2619 MHz, ' || (1980 - (hash(i) % 4) * 15)::VARCHAR || ' MHz, '
          || (45 + (i // 40000) % 30)::VARCHAR || ', '
          || (hash(i * 3) % 101)::VARCHAR || ' %, ' || (hash(i * 5) % 101)::VARCHAR || ' %, '
          || (40000 + hash(i * 11) % 40000)::VARCHAR || ' MiB' AS line
        FROM range({rows}) t(i)"""
    _copy_lines(con, select, out, NVSMI_HEADER)
    return out


def make_perf_csv(lines: int, out: Path) -> Path:
    """A perf stat -a -x, -I 100 file of ``lines`` lines (5 events per 100 ms interval)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    n_ev = len(PERF_EVENTS)
    events = "[" + ", ".join(f"'{e}'" for e, _ in PERF_EVENTS) + "]"
    units = "[" + ", ".join(f"'{u}'" for _, u in PERF_EVENTS) + "]"
    select = f"""
        SELECT printf('%15.9f', (i // {n_ev} + 1) * 0.1 + (hash(i // {n_ev}) % 1000) / 1e7) || ','
          || CASE WHEN i % {n_ev} < 3 THEN (1000000 + hash(i) % 900000000)::VARCHAR
                  ELSE printf('%.2f', 1.5 + (hash(i) % 300) / 100.0) END || ','
          || {units}[i % {n_ev} + 1] || ',' || {events}[i % {n_ev} + 1] || ','
          || (100000000 + hash(i // {n_ev}) % 1000000)::VARCHAR || ',100.00,,' AS line
        FROM range({lines}) t(i)"""
    _copy_lines(con, select, out)
    return out


# ------------------------------------------------------------------------------------------ children
def child_read_csv(path: str, db: str) -> dict:
    """The reference: DuckDB's read_csv of the file into a table of a fresh database."""
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    t = time.perf_counter()
    con.execute("CREATE TABLE raw AS SELECT * FROM read_csv(?)", [path])
    inproc_s = time.perf_counter() - t
    return {"rows": con.execute("SELECT count(*) FROM raw").fetchone()[0], "inproc_s": inproc_s}


def child_ingest(path: str, db: str, args_json: str) -> dict:
    """In-process ingest: ``ingest_paths`` into a fresh, already migrated warehouse (no process start,
    imports or warehouse creation in the time; hashing, detection, parsing, inserting, committing in it)."""
    from dlwh.ingest.loader import IngestOptions, ingest_paths
    from dlwh.warehouse import open_warehouse

    cli = json.loads(args_json)  # the CLI's --tz/--start, as options
    opts = IngestOptions(tz=cli.get("--tz"), start=cli.get("--start"))
    con = open_warehouse(db)
    con.execute("SET enable_progress_bar = false")
    t = time.perf_counter()
    result = ingest_paths(con, [path], opts)[0]
    inproc_s = time.perf_counter() - t
    if not result.outcome.startswith("loaded"):
        raise SystemExit(result.describe())
    return {"rows": result.rows, "inproc_s": inproc_s}


def child_span_energy(db: str, samples: int, spans: int) -> dict:
    """Fill a warehouse with power samples and spans (bulk INSERT), then time the span_energy query."""
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(db)
    con.execute("SET enable_progress_bar = false")
    gpus = 4
    per_gpu = samples // gpus
    seconds = per_gpu * 0.1
    t = time.perf_counter()
    con.execute("BEGIN")
    con.execute("INSERT INTO runs (run_id, start_ts, end_ts, source, file_sha256) VALUES "
                "('bench', TIMESTAMP '2026-11-21 10:15:00', TIMESTAMP '2026-11-21 10:15:00' + "
                "to_microseconds(?::BIGINT), 'file', 'bench')", [int(seconds * 1e6)])
    con.execute("INSERT INTO sensors SELECT 'bench:gpu' || g, 'bench', 'bench', 'gpu', 'GPU ' || g, g, NULL, "
                "'Bench GPU', 'nvidia-smi' FROM range(?) t(g)", [gpus])
    # 100 ms samples, ~1 ms apart between GPUs, power a slow sine plus noise
    con.execute("INSERT INTO samples SELECT 'bench:gpu' || (i % ?), TIMESTAMP '2026-11-21 10:15:00' + "
                "to_microseconds(((i // ?) * 100000 + (i % ?) * 1000)::BIGINT), 'power', 'W', "
                "300 + 250 * sin(i / 40000.0) + (hash(i) % 2000) / 100.0, NULL, 'bench' FROM range(?) t(i)",
                [gpus, gpus, gpus, per_gpu * gpus])
    # epochs of steps tiling the run: n_epochs epochs, each cut into equal steps
    n_epochs = max(1, spans // 1000)
    steps = spans // n_epochs - 1
    epoch_us = int(seconds * 1e6) // n_epochs
    step_us = epoch_us // max(steps, 1)
    con.execute("INSERT INTO spans SELECT 'bench', 'e' || e, NULL, 'epoch', 'epoch', "
                "TIMESTAMP '2026-11-21 10:15:00' + to_microseconds(e * ?), "
                "TIMESTAMP '2026-11-21 10:15:00' + to_microseconds((e + 1) * ?), NULL, NULL, NULL, 'bench' "
                "FROM range(?) t(e)", [epoch_us, epoch_us, n_epochs])
    con.execute("INSERT INTO spans SELECT 'bench', 'e' || e || 's' || s, 'e' || e, 'step', 'step', "
                "TIMESTAMP '2026-11-21 10:15:00' + to_microseconds(e * ? + s * ?), "
                "TIMESTAMP '2026-11-21 10:15:00' + to_microseconds(e * ? + (s + 1) * ?), NULL, NULL, NULL, 'bench' "
                "FROM range(?) a(e), range(?) b(s)", [epoch_us, step_us, epoch_us, step_us, n_epochs, steps])
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    fill_s = time.perf_counter() - t
    n_samples = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    n_spans = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    t = time.perf_counter()
    energy, rows = con.execute("SELECT sum(energy_j), count(*) FROM span_energy").fetchone()
    query_s = time.perf_counter() - t
    # check: the epochs tile the samples' span, so their energy is the run's (to rounding)
    epochs = con.execute("SELECT sum(energy_j) FROM span_energy WHERE kind = 'epoch'").fetchone()[0]
    run = con.execute("SELECT sum(energy_j) FROM run_energy").fetchone()[0]
    return {"samples": n_samples, "spans": n_spans, "span_energy_rows": rows, "energy_j": energy,
            "epochs_energy_j": epochs, "run_energy_j": run, "fill_s": round(fill_s, 2), "query_s": round(query_s, 3)}


# ------------------------------------------------------------------------------------------ timing
def measure(argv: list[str], env: dict | None = None) -> dict:
    """Run argv as a child; wall seconds, CPU seconds and peak RSS (MiB) of that child."""
    import tempfile

    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out_f, stderr=err_f, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed ({' '.join(argv[:4])} ...):\n{err.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def _fresh(db: Path) -> str:
    for extra in ("", ".wal"):
        Path(str(db) + extra).unlink(missing_ok=True)
    return str(db)


def _dlwh() -> list[str]:
    script = Path(sys.executable).with_name("dlwh")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from dlwh.cli import main; main()"]


def compare(label: str, path: Path, ingest_args: list[str], repeat: int, expect_rows: int | None) -> dict:
    """Alternate the reference read_csv and dlwh ingest ``repeat`` times; medians and ratios."""
    ref, ing, inproc = [], [], []
    db_ref, db_ing = DATA / f"{label}-read_csv.duckdb", DATA / f"{label}-ingest.duckdb"
    loaded = None
    cli_opts = json.dumps(dict(zip(ingest_args[::2], ingest_args[1::2])))
    for _ in range(repeat):
        r = measure([sys.executable, __file__, "_child", "read_csv", str(path), _fresh(db_ref)])
        r["inproc_s"] = json.loads(r["stdout"].strip().splitlines()[-1])["inproc_s"]
        ref.append(r)
        p = measure([sys.executable, __file__, "_child", "ingest", str(path), _fresh(db_ing), cli_opts])
        p["inproc_s"] = json.loads(p["stdout"].strip().splitlines()[-1])["inproc_s"]
        inproc.append(p)
        i = measure(_dlwh() + ["ingest", str(path), "--db", _fresh(db_ing), "-q"] + ingest_args)
        ing.append(i)
        import duckdb

        con = duckdb.connect(str(db_ing), read_only=True)
        loaded = con.execute("SELECT rows_loaded, outcome FROM files").fetchone()
        con.close()
        print(f"  {label}: read_csv {r['wall_s']:.1f} s ({r['cpu_s']:.1f} s CPU, {r['peak_rss_mib']:.0f} MiB); "
              f"dlwh ingest {i['wall_s']:.1f} s ({i['cpu_s']:.1f} s CPU, {i['peak_rss_mib']:.0f} MiB); "
              f"in-process read_csv {r['inproc_s']:.2f} s, ingest_paths {p['inproc_s']:.2f} s; "
              f"{loaded[0]:,} rows {loaded[1]}; load average {os.getloadavg()[0]:.1f}", flush=True)
    if expect_rows is not None and loaded[0] != expect_rows:
        raise SystemExit(f"{label}: dlwh ingest loaded {loaded[0]} rows, expected {expect_rows}")

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    out = {"file": str(path), "size_mb": round(path.stat().st_size / 1e6, 1), "rows_loaded": loaded[0],
           "read_csv_wall_s": med(ref, "wall_s"), "read_csv_cpu_s": med(ref, "cpu_s"),
           "read_csv_peak_rss_mib": max(x["peak_rss_mib"] for x in ref),
           "ingest_wall_s": med(ing, "wall_s"), "ingest_cpu_s": med(ing, "cpu_s"),
           "ingest_peak_rss_mib": max(x["peak_rss_mib"] for x in ing)}
    out["ratio_wall"] = out["ingest_wall_s"] / out["read_csv_wall_s"]
    out["ratio_cpu"] = out["ingest_cpu_s"] / out["read_csv_cpu_s"]
    out["ratios_wall_each"] = [round(i["wall_s"] / r["wall_s"], 2) for r, i in zip(ref, ing)]
    # in-process: the CREATE TABLE ... read_csv statement against ingest_paths, both after connecting
    out["read_csv_inproc_s"] = med(ref, "inproc_s")
    out["ingest_inproc_s"] = med(inproc, "inproc_s")
    out["ratio_inproc"] = out["ingest_inproc_s"] / out["read_csv_inproc_s"]
    out["ratios_inproc_each"] = [round(p["inproc_s"] / r["inproc_s"], 2) for r, p in zip(ref, inproc)]
    return out


def machine() -> dict:
    """A short description of the machine (CPU model, cores, memory, load)."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_gib = int(next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                           if l.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        mem_gib = float("nan")
    import duckdb

    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "os": platform.platform(), "load_average_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    global DATA
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="nvidia-smi CSV rows (4 GPUs, 100 ms)")
    p.add_argument("--perf-lines", type=int, default=1_000_000, help="perf stat -x, -I lines")
    p.add_argument("--samples", type=int, default=10_000_000, help="power samples for span_energy")
    p.add_argument("--spans", type=int, default=100_000, help="spans for span_energy")
    p.add_argument("--parts", default="nvidia-smi,perf,span_energy")
    p.add_argument("--memory-limit", default="1500MB",
                   help="also time span_energy with DLWH_MEMORY_LIMIT set to this ('' to skip)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each step (medians reported)")
    p.add_argument("--data", type=Path, default=DATA, help="where generated files go (default benchmarks/_data)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    DATA = args.data
    DATA.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"machine: {results['machine']}", flush=True)

    if "nvidia-smi" in parts:
        path = DATA / f"nvidia-smi-{args.rows}.csv"
        if not path.exists():
            t = time.perf_counter()
            make_nvidia_smi_csv(args.rows, path)
            print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
        res = compare("nvidia-smi", path, ["--tz", "Europe/Berlin"], args.repeat, args.rows * NVSMI_METRICS)
        results["nvidia-smi"] = res
        print(f"nvidia-smi: {args.rows:,} rows -> {res['rows_loaded']:,} samples: ingest {res['ingest_wall_s']:.1f} s "
              f"= {res['ratio_wall']:.2f}x read_csv ({res['read_csv_wall_s']:.1f} s), CPU {res['ratio_cpu']:.2f}x; "
              f"in-process {res['ingest_inproc_s']:.1f} s = {res['ratio_inproc']:.2f}x ({res['read_csv_inproc_s']:.1f} s); "
              f"peak RSS {res['ingest_peak_rss_mib']:.0f} MiB", flush=True)

    if "perf" in parts:
        path = DATA / f"perf-{args.perf_lines}.csv"
        if not path.exists():
            make_perf_csv(args.perf_lines, path)
        res = compare("perf", path, ["--start", "2026-11-21T10:15:00Z"], args.repeat, None)
        results["perf"] = res
        print(f"perf: {args.perf_lines:,} lines -> {res['rows_loaded']:,} rows: ingest {res['ingest_wall_s']:.1f} s "
              f"= {res['ratio_wall']:.2f}x read_csv ({res['read_csv_wall_s']:.2f} s), CPU {res['ratio_cpu']:.2f}x; "
              f"in-process {res['ingest_inproc_s']:.2f} s = {res['ratio_inproc']:.2f}x ({res['read_csv_inproc_s']:.2f} s); "
              f"peak RSS {res['ingest_peak_rss_mib']:.0f} MiB", flush=True)

    if "span_energy" in parts:
        # DuckDB's own memory limit (80 % of RAM), then the limit dlwh users can set (DLWH_MEMORY_LIMIT)
        for label, limit in (("span_energy", None), ("span_energy_limited", args.memory_limit)):
            if label != "span_energy" and not limit:
                continue
            env = dict(os.environ, DLWH_MEMORY_LIMIT=limit) if limit else None
            runs = []
            for _ in range(args.repeat):
                m = measure([sys.executable, __file__, "_child", "span_energy", _fresh(DATA / "spans.duckdb"),
                             str(args.samples), str(args.spans)], env=env)
                info = json.loads(m["stdout"].strip().splitlines()[-1])
                info["peak_rss_mib"] = m["peak_rss_mib"]
                runs.append(info)
                print(f"  {label}: query {info['query_s']:.2f} s over {info['samples']:,} samples and "
                      f"{info['spans']:,} spans ({info['span_energy_rows']:,} rows; fill {info['fill_s']:.0f} s); "
                      f"peak RSS {m['peak_rss_mib']:.0f} MiB; load average {os.getloadavg()[0]:.1f}", flush=True)
            res = dict(runs[-1], memory_limit=limit)
            res["query_s"] = statistics.median(r["query_s"] for r in runs)
            res["queries_s"] = [r["query_s"] for r in runs]
            res["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
            results[label] = res
            print(f"{label}: {res['query_s']:.2f} s (median), peak RSS {res['peak_rss_mib']:.0f} MiB "
                  f"(memory limit {limit or 'DuckDB default'}); epochs {res['epochs_energy_j']:.6g} J vs run "
                  f"{res['run_energy_j']:.6g} J", flush=True)

    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        task, rest = sys.argv[2], sys.argv[3:]
        if task == "read_csv":
            print(json.dumps(child_read_csv(*rest)))
        elif task == "ingest":
            print(json.dumps(child_ingest(*rest)))
        elif task == "span_energy":
            print(json.dumps(child_span_energy(rest[0], int(rest[1]), int(rest[2]))))
        sys.exit(0)
    sys.exit(main())
