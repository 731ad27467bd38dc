"""nvprof: --print-gpu-trace (human and CSV), summary mode, --metrics / --events; kernels beside power."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.runfactory import T0, make_run

START = "2026-01-01T10:00:00Z"

CSV_TRACE = """======== Profiling result:
"Start","Duration","Grid X","Grid Y","Grid Z","Block X","Block Y","Block Z","Registers Per Thread","Static SMem","Dynamic SMem","Size","Throughput","SrcMemType","DstMemType","Device","Context","Stream","Name","Correlation_ID"
us,us,,,,,,,,KB,KB,KB,GB/s,,,,,,,
0.000000,1.888000,,,,,,,,,,1.003906,0.507097,"Device",,"GeForce RTX 2080 Ti (0)","1","7","[CUDA memset]",272
4643.346000,1.536000,,,,,,,,,,0.125000,0.077610,"Pinned","Device","GeForce RTX 2080 Ti (0)","1","22","[CUDA memcpy HtoD]",316
4650.000000,25.120000,128,1,1,256,1,1,32,0.500000,0.000000,,,,,"GeForce RTX 2080 Ti (0)","1","7","sgemm_kernel(float*, float const *) [320]",320
"""

CSV_METRICS = """==1234== Metric result:
"Device","Kernel","Invocations","Metric Name","Metric Description","Min","Max","Avg"
"GeForce RTX 2080 Ti (0)","sgemm_kernel(float*, float const *)",1,"flop_count_sp","Floating Point Operations(Single Precision)",2147483648,2147483648,2147483648
"GeForce RTX 2080 Ti (0)","sgemm_kernel(float*, float const *)",1,"dram_utilization","Device Memory Utilization","Low (2)","Mid (4)","Low (3)"
"GeForce RTX 2080 Ti (0)","sgemm_kernel(float*, float const *)",1,"flop_sp_efficiency","FLOP Efficiency(Peak Single)",85.100000%,86.200000%,85.500000%
"GeForce RTX 2080 Ti (0)","sgemm_kernel(float*, float const *)",1,"tex_utilization","Unified Cache Utilization","Idle (0)","Idle (0)","Idle (0)"
"GeForce RTX 2080 Ti (0)","sgemm_kernel(float*, float const *)",1,"dram_read_throughput","Device Memory Read Throughput",1.500000GB/s,1.500000GB/s,1.500000GB/s
"""

SUMMARY = """==1510043== NVPROF is profiling process 1510043, command: ./matrix_mul_shared
Done. Compute took 0.618091 seconds
==1510043== Profiling application: ./matrix_mul_shared
==1510043== Profiling result:
            Type  Time(%)      Time     Calls       Avg       Min       Max  Name
 GPU activities:   59.68%  254.32ms         1  254.32ms  254.32ms  254.32ms  mmul(float const *, float const *, float*, int)
                   26.54%  113.11ms         2  56.555ms  56.464ms  56.646ms  [CUDA memcpy HtoD]
                   13.78%  58.721ms         1  58.721ms  58.721ms  58.721ms  [CUDA memcpy DtoH]
      API calls:   71.95%  426.98ms         3  142.33ms  56.685ms  313.49ms  cudaMemcpy
                   27.89%  165.51ms         3  55.170ms  390.69us  164.73ms  cudaMalloc
                    0.14%  846.70us       404  2.0950us     146ns  94.023us  cuDeviceGetAttribute
"""

OLD_SUMMARY = """==1234== Profiling result:
Time(%)      Time     Calls       Avg       Min       Max  Name
 99.95%  4.0957ms         1  4.0957ms  4.0957ms  4.0957ms  kernel(float*)
  0.05%  1.9200us         1  1.9200us  1.9200us  1.9200us  [CUDA memcpy HtoD]

==1234== API calls:
Time(%)      Time     Calls       Avg       Min       Max  Name
 96.18%  216.33ms         3  72.110ms  1.2000us  216.32ms  cudaMalloc
"""

CSV_SUMMARY = """==1234== Profiling result:
"Type","Time(%)","Time","Calls","Avg","Min","Max","Name"
,%,ms,,ms,us,ms,
"GPU activities",59.683,254.32,1,254.32,254320,254.32,"mmul(float const *, float const *, float*, int)"
"API calls",71.95,426.98,3,142.33,56685,313.49,"cudaMemcpy"
"""

EVENTS = """==1234== Event result:
Invocations                                Event Name         Min         Max         Avg       Total
Device "Tesla K80 (0)"
    Kernel: kernel(float*)
          2                            inst_executed        1024        2048        1536        3072
"""


def _kernels(con):
    return con.execute("SELECT * EXCLUDE (run_id, file_sha256) FROM kernels ORDER BY line").df()


def test_human_trace_fixture(con, fixtures_dir):
    path = fixtures_dir / "nvprof" / "stego74-print-gpu-trace-gtx1060.txt"
    [result] = ingest_paths(con, [path], IngestOptions(start=START))
    assert result.outcome == "loaded" and result.format == "nvprof-trace" and result.rows == 10, result.describe()
    assert "Start anchored at 2026-01-01T10:00:00Z (--start)" in result.message
    df = _kernels(con)
    # 454.89ms  1.5680us  (1 1 1)  (128 1 1)  16  0B  0B  -  -  -  -  GeForce GTX 106  1  7  grouping(subgroup*) [105]
    k = df.iloc[0]
    assert (k["line"], k["kind"], k["name"]) == (5, "kernel", "grouping(subgroup*) [105]")
    assert k["start_s"] == pytest.approx(0.45489) and k["duration_s"] == pytest.approx(1.568e-6)
    assert k["start_ts"] == datetime(2026, 1, 1, 10, 0, 0, 454890)
    assert (k["grid_x"], k["grid_y"], k["grid_z"], k["block_x"], k["block_y"], k["block_z"]) == (1, 1, 1, 128, 1, 1)
    assert (k["registers_per_thread"], k["static_smem_bytes"], k["dynamic_smem_bytes"]) == (16, 0.0, 0.0)
    assert pd.isna(k["size_bytes"]) and pd.isna(k["src_mem_type"])
    assert (k["device"], k["context"], k["stream"]) == ("GeForce GTX 106", 1, 7)
    # 455.48ms  173.25us  -  -  -  -  -  1.0000MB  5.6367GB/s  Pageable  Device  GeForce GTX 106  1  7  [CUDA memcpy HtoD]
    m = df.iloc[1]
    assert (m["kind"], m["name"], m["size_bytes"]) == ("memcpy", "[CUDA memcpy HtoD]", 1024.0 ** 2)
    assert m["throughput_bytes_per_s"] == pytest.approx(5.6367 * 1024 ** 3)
    assert m["duration_s"] == pytest.approx(173.25e-6) and (m["src_mem_type"], m["dst_mem_type"]) == ("Pageable", "Device")
    # 456.10ms  103.14us  (4681 1 1)  (224 1 1)  32  224B  0B ... 14  embed(...) [119]
    e = df.iloc[4]
    assert (e["grid_x"], e["block_x"], e["static_smem_bytes"], e["stream"]) == (4681, 224, 224.0, 14)
    assert e["name"] == "embed(unsigned char*, int, unsigned char*, int, subgroup*, int) [119]"
    # 1.03099s  175.36us ... the seconds unit
    assert df.iloc[6]["start_s"] == pytest.approx(1.03099) and df.iloc[9]["kind"] == "memcpy"
    assert list(df["kind"]).count("kernel") == 4


def test_trace_needs_an_anchor(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "nvprof" / "stego74-print-gpu-trace-gtx1060.txt"])
    assert result.outcome == "failed" and "pass --start" in result.message and "run.json" in result.message
    assert con.execute("SELECT count(*) FROM kernels").fetchone()[0] == 0


def test_metrics_fixture(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "nvprof" / "thrust2d-metrics-gtx1070-pyrup.profile"])
    assert result.outcome == "loaded" and result.format == "nvprof-metrics" and result.rows == 14
    df = con.execute("SELECT * EXCLUDE (run_id, file_sha256) FROM kernel_metrics ORDER BY line").df()
    assert set(df["device"]) == {"GeForce GTX 1070 (0)"} and df["kernel"].nunique() == 2
    assert df.iloc[0]["kernel"].startswith("void thrust::system::cuda::detail::bulk_::detail::launch_by_value<")
    assert df.iloc[0]["kernel"].endswith("thrust::null_type>>>>(unsigned long=1)")
    # 1  dram_read_throughput  Device Memory Read Throughput  1.1655GB/s  1.1655GB/s  1.1651GB/s
    r = df.iloc[0]
    assert (r["line"], r["invocations"], r["metric"], r["description"], r["unit"]) == (
        9, 1, "dram_read_throughput", "Device Memory Read Throughput", "B/s")
    assert r["min_value"] == pytest.approx(1.1655 * 1024 ** 3) and r["avg_value"] == pytest.approx(1.1651 * 1024 ** 3)
    assert (r["min_text"], r["avg_text"]) == ("1.1655GB/s", "1.1651GB/s")
    # 1  achieved_occupancy  Achieved Occupancy  0.753574 ...   /  gld_efficiency ... 22.92%
    occ = df[df["metric"] == "achieved_occupancy"].iloc[0]
    assert (occ["avg_value"], occ["unit"]) == (0.753574, "")
    gld = df[df["metric"] == "gld_efficiency"]
    assert list(gld["avg_value"]) == [22.92, 47.47] and set(gld["unit"]) == {"%"}
    spr = df[df["metric"] == "shared_load_transactions_per_request"].iloc[1]
    assert spr["description"] == "Shared Memory Load Transactions Per Request" and spr["max_value"] == 0.0


@pytest.mark.slow
def test_csv_trace_and_metrics_beside_power(con, tmp_path):
    run = make_run(tmp_path / "run", seconds=2, power=lambda s: 100.0)
    (run / "gpu_trace.csv").write_text(CSV_TRACE)
    (run / "metrics.csv").write_text(CSV_METRICS)
    results = ingest_paths(con, [run])
    assert {r.outcome for r in results if r.path.name != "spans.jsonl"} == {"loaded"}, [r.describe() for r in results]
    df = _kernels(con)
    memset, memcpy, kernel = df.iloc[0], df.iloc[1], df.iloc[2]
    assert (memset["kind"], memset["size_bytes"], memset["src_mem_type"]) == (
        "memset", pytest.approx(1.003906 * 1024), "Device") and pd.isna(memset["dst_mem_type"])
    assert memset["throughput_bytes_per_s"] == pytest.approx(0.507097 * 1024 ** 3)
    assert (memcpy["start_s"], memcpy["stream"], memcpy["correlation_id"]) == (pytest.approx(4643.346e-6), 22, 316)
    assert memcpy["start_ts"] == T0.replace(tzinfo=None) + timedelta(microseconds=4643)   # µs resolution
    assert (kernel["grid_x"], kernel["block_x"], kernel["registers_per_thread"]) == (128, 256, 32)
    assert kernel["static_smem_bytes"] == 512.0 and kernel["device"] == "GeForce RTX 2080 Ti (0)"
    levels = con.execute("SELECT min_value, max_value, avg_value, unit FROM kernel_metrics "
                         "WHERE metric = 'dram_utilization'").fetchone()
    assert levels == (2.0, 4.0, 3.0, "level")
    assert con.execute("SELECT avg_value, unit FROM kernel_metrics WHERE metric = 'tex_utilization'").fetchone() == (0.0, "level")
    assert con.execute("SELECT avg_value, unit FROM kernel_metrics WHERE metric = 'flop_sp_efficiency'").fetchone() == (85.5, "%")
    energy = con.execute("SELECT * FROM kernel_energy WHERE kind = 'kernel'").df().iloc[0]
    assert energy["kernel"] == "sgemm_kernel(float*, float const *)" and energy["calls"] == 1
    assert energy["n_gpu_sensors"] == 1 and energy["avg_gpu_power_w"] == pytest.approx(100.0)
    assert energy["gpu_energy_j"] == pytest.approx(100.0 * 25e-6)          # 25.12 µs at µs resolution
    assert energy["flops"] == 2147483648 and energy["flop_count_sp"] == 2147483648
    assert energy["flops_per_s"] == pytest.approx(2147483648 / 25.12e-6)
    assert energy["flops_per_j"] == pytest.approx(2147483648 / (100.0 * 25e-6))


@pytest.mark.slow
def test_summary_modes(con, tmp_path):
    (tmp_path / "summary.txt").write_text(SUMMARY)
    (tmp_path / "old.txt").write_text(OLD_SUMMARY)
    (tmp_path / "summary.csv").write_text(CSV_SUMMARY)
    results = ingest_paths(con, [tmp_path])
    assert {r.outcome for r in results} == {"loaded"}, [r.describe() for r in results]
    rows = con.execute("SELECT f.path, s.type, s.time_pct, s.total_s, s.calls, s.avg_s, s.min_s, s.max_s, s.name "
                       "FROM kernel_summary s JOIN files f ON f.sha256 = s.file_sha256 ORDER BY f.path, s.line").fetchall()
    by_file = {}
    for path, *rest in rows:
        by_file.setdefault(path.rsplit("/", 1)[1], []).append(tuple(rest))
    human = by_file["summary.txt"]
    assert human[0] == ("GPU activities", 59.68, pytest.approx(0.25432), 1, pytest.approx(0.25432),
                        pytest.approx(0.25432), pytest.approx(0.25432), "mmul(float const *, float const *, float*, int)")
    assert human[1][0] == "GPU activities" and human[1][7] == "[CUDA memcpy HtoD]" and human[1][3] == 2
    assert human[3][:2] == ("API calls", 71.95) and human[3][7] == "cudaMemcpy"
    assert human[5][3:7] == (404, pytest.approx(2.095e-6), pytest.approx(146e-9), pytest.approx(94.023e-6))
    old = by_file["old.txt"]
    assert [(r[0], r[7]) for r in old] == [("GPU activities", "kernel(float*)"),
                                          ("GPU activities", "[CUDA memcpy HtoD]"), ("API calls", "cudaMalloc")]
    assert old[2][2] == pytest.approx(0.21633) and old[2][5] == pytest.approx(1.2e-6)
    csv = by_file["summary.csv"]
    assert csv[0][:4] == ("GPU activities", 59.683, pytest.approx(0.25432), 1)
    assert csv[0][5] == pytest.approx(0.25432)       # Min in us: 254320 us
    assert csv[1][0] == "API calls" and csv[1][7] == "cudaMemcpy"


@pytest.mark.slow
def test_events(con, tmp_path):
    (tmp_path / "events.txt").write_text(EVENTS)
    [result] = ingest_paths(con, [tmp_path / "events.txt"])
    assert result.outcome == "loaded" and result.format == "nvprof-metrics"
    assert con.execute("SELECT device, kernel, invocations, metric, min_value, max_value, avg_value, unit "
                       "FROM kernel_metrics").fetchall() == [
        ("Tesla K80 (0)", "kernel(float*)", 2, "inst_executed", 1024.0, 2048.0, 1536.0, "")]


@pytest.mark.parametrize("text, cut", [
    (CSV_TRACE.rstrip("\n")[:-30], True),           # inside the last row's kernel name
    (CSV_TRACE.rstrip("\n"), False),                # complete without its newline
])
def test_cut_last_row_loads_the_rest_and_warns(con, tmp_path, text, cut):
    (tmp_path / "trace.csv").write_text(text)
    [result] = ingest_paths(con, [tmp_path / "trace.csv"], IngestOptions(start=START))
    kernels = con.execute("SELECT count(*) FROM kernels").fetchone()[0]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith("line 6 is cut off (the recording stopped mid-line?): skipped")
        assert kernels == 2
    else:
        assert result.outcome == "loaded", result.describe()
        assert kernels == 3


@pytest.mark.parametrize("name, text, message, line", [
    ("noname.csv", CSV_TRACE.replace('"sgemm_kernel(float*, float const *) [320]"', '""'), "row without a kernel name", 6),
    ("badtime.txt", "==1== Profiling result:\n   Start  Duration  Name\nabc  1.5us  k()\n", "Start and Duration", 3),
    ("badmetric.txt", "==1== Metric result:\nInvocations  Metric Name  Metric Description  Min  Max  Avg\n"
                      "          1   x  desc  1.0  2.0  3.0\n", "before any 'Kernel:' line", 3),
    ("badsummary.txt", "==1== Profiling result:\n            Type  Time(%)      Time     Calls       Avg       Min       Max  Name\n"
                       " GPU activities:   lots\n", "summary row not of the form", 3),
])
@pytest.mark.slow
def test_bad_files_change_nothing(con, tmp_path, fixtures_dir, name, text, message, line):
    ingest_paths(con, [fixtures_dir / "nvprof"], IngestOptions(start=START))
    counts = lambda: [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("kernels", "kernel_metrics", "kernel_summary", "files", "runs")]
    before = counts()
    path = tmp_path / name
    path.write_text(text)
    [result] = ingest_paths(con, [path], IngestOptions(start=START))
    assert result.outcome == "failed" and message in result.message, result.describe()
    assert result.line == line
    assert counts() == before
