"""A fake ``perf`` replaying a real ``perf stat -x, -I`` recording (FAKE_PERF_FIXTURE, e.g.
../shared/fixtures/perf/raplvalidation-csv-I100-pmu-uncore-rapl.csv).

Answers ``--version`` (recorded on the dlwh dev machine), the probe ``perf stat -a -x, -e EVENTS
-- true`` (each event's first line from the fixture, without the interval column, or perf's
``<not supported>`` line as recorded on the dev machine) and ``perf stat -a -x, -I N -e ... -o
FILE``: a ``# started on`` line, then the fixture's lines for the requested events, one interval
group every N ms, until SIGINT.
"""

import os
import signal
import sys
import time
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[2] / "local"


def fixture_lines():
    path = os.environ.get("FAKE_PERF_FIXTURE")
    return [l for l in Path(path).read_text().splitlines() if l.strip() and not l.startswith("#")] if path else []


def events_of(argv):
    evs = []
    for i, a in enumerate(argv):
        if a == "-e":
            evs += argv[i + 1].split(",")
    return evs


def event_col(line):
    return line.strip().split(",")[3]


def main(argv):
    if argv == ["--version"]:
        sys.stdout.write((LOCAL / "perf-version.txt").read_text())
        return 0
    if not argv or argv[0] != "stat":
        print("fake perf: only stat", file=sys.stderr)
        return 129
    lines = fixture_lines()
    events = events_of(argv)
    if "-I" not in argv:  # probe
        for ev in events:
            hit = next((l for l in lines if event_col(l) == ev), None)
            if hit:
                sys.stderr.write(",".join(hit.strip().split(",")[1:]) + "\n")
            else:
                sys.stderr.write(f"<not supported>,,{ev},0,100.00,,\n")
        return 0
    interval = int(argv[argv.index("-I") + 1]) / 1000.0
    out = open(argv[argv.index("-o") + 1], "w")
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    out.write(time.strftime("# started on %a %b %d %H:%M:%S %Y\n\n"))
    out.flush()
    groups = {}
    for l in lines:
        if event_col(l) in events:
            groups.setdefault(l.strip().split(",")[0], []).append(l)
    t0 = time.monotonic()
    for k, ts in enumerate(groups):
        while not stop and time.monotonic() < t0 + (k + 1) * interval:
            time.sleep(0.002)
        if stop:
            break
        out.write("\n".join(groups[ts]) + "\n")
        out.flush()
    while not stop:
        time.sleep(0.01)
    out.close()
    return 130


sys.exit(main(sys.argv[1:]))
