"""A fake ``powermetrics --samplers cpu_power,gpu_power -i N`` replaying FAKE_POWERMETRICS_FIXTURE
(e.g. ../shared/fixtures/powermetrics/codecarbon-m1-macbookair.txt): the preamble, then one sample
block every N ms, until SIGINT/SIGTERM.
"""

import os
import signal
import sys
import time
from pathlib import Path

argv = sys.argv[1:]
interval = int(argv[argv.index("-i") + 1]) / 1000.0 if "-i" in argv else 5.0
text = Path(os.environ["FAKE_POWERMETRICS_FIXTURE"]).read_text()
marker = "*** Sampled system activity"
parts = text.split(marker)
stop = []
signal.signal(signal.SIGINT, lambda *a: stop.append(1))
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
sys.stdout.write(parts[0])
sys.stdout.flush()
t0 = time.monotonic()
for k, block in enumerate(parts[1:]):
    while not stop and time.monotonic() < t0 + (k + 1) * interval:
        time.sleep(0.002)
    if stop:
        break
    sys.stdout.write(marker + block)
    sys.stdout.flush()
while not stop:
    time.sleep(0.01)
sys.exit(0)
