"""A fake ``nvidia-smi`` replaying output recorded on an NVIDIA H200 (../h200/).

Answers: ``--version``, ``-L``, ``--query-gpu=FIELDS --format=csv`` (the recorded probe outputs,
and the recorded "not a valid field" message for fields in FAKE_SMI_DROP, a comma list that
stands for an older driver), the GPU-inventory query, and ``... -lms N``: the recorded
``-lms 100`` rows, one every N ms, with the timestamp column set to the current local time as
nvidia-smi prints it, until SIGTERM/SIGINT. FAKE_SMI_FAIL=text prints that and exits 9 (no driver).
"""

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

H200 = Path(__file__).resolve().parents[2] / "h200"
REC = json.loads((H200 / "nvidia-smi.json").read_text())
FIELDS = ["index", "uuid", "timestamp", "power.draw", "power.draw.instant", "power.limit",
          "enforced.power.limit", "clocks.sm", "clocks.mem", "clocks.gr", "temperature.gpu",
          "utilization.gpu", "utilization.memory", "memory.used"]


def out(rec):
    sys.stdout.write(rec["stdout"])
    sys.stderr.write(rec["stderr"])
    sys.exit(rec["rc"])


def invalid(field):
    text = REC["smi_probe_invalid"]["stdout"].replace("power.bogus", field)
    sys.stdout.write(text)
    sys.exit(REC["smi_probe_invalid"]["rc"])


def main(argv):
    if os.environ.get("FAKE_SMI_FAIL"):
        print(os.environ["FAKE_SMI_FAIL"])
        sys.exit(9)
    drop = [f for f in os.environ.get("FAKE_SMI_DROP", "").split(",") if f]
    if argv == ["--version"]:
        out(REC["smi_version"])
    if argv == ["-L"]:
        out(REC["smi_list"])
    query = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")), None)
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), None)
    if query is None:
        print(f"fake nvidia-smi: unsupported arguments {argv}", file=sys.stderr)
        sys.exit(2)
    fields = query.split(",")
    if fmt == "csv,noheader,nounits" and query == REC["smi_gpus"]["argv"][1].split("=", 1)[1]:
        out(REC["smi_gpus"])
    for f in fields:
        if f in drop or f not in FIELDS:
            invalid(f)
    if "-lms" not in argv:
        if fields == FIELDS:
            out(REC["smi_probe_all"])
        if len(fields) == 1:
            out(REC["smi_probe"][fields[0]])
        print(f"fake nvidia-smi: no recording for {query}", file=sys.stderr)
        sys.exit(2)
    interval = int(argv[argv.index("-lms") + 1]) / 1000.0
    keep = [FIELDS.index(f) for f in fields]
    lines = (H200 / "nvidia-smi-lms100.csv").read_text().splitlines()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *a: sys.exit(0))
    header = lines[0].split(", ")
    sys.stdout.write(", ".join(header[i] for i in keep) + "\n")
    sys.stdout.flush()
    rows = [l.split(", ") for l in lines[1:]]
    k = 0
    t0 = time.monotonic()
    while True:
        row = list(rows[k % len(rows)])
        row[2] = datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
        sys.stdout.write(", ".join(row[i] for i in keep) + "\n")
        sys.stdout.flush()
        k += 1
        time.sleep(max(0.0, t0 + k * interval - time.monotonic()))


main(sys.argv[1:])
