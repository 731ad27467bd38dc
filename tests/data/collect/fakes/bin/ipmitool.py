"""A fake ``ipmitool``: ``-V`` and ``dcmi power reading`` replay recorded output.

``dcmi power reading`` prints FAKE_IPMI_FIXTURE (e.g. ../shared/fixtures/ipmitool/
telegraf-ipmitool-dcmi-power-reading.txt); with FAKE_IPMI_NO_BMC=1 it prints what ipmitool 1.8.19
printed on the dlwh dev machine (no BMC) and exits 1.
"""

import os
import sys
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[2] / "local"
argv = sys.argv[1:]
if argv == ["-V"]:
    sys.stdout.write((LOCAL / "ipmitool-version.txt").read_text())
    sys.exit(0)
if argv == ["dcmi", "power", "reading"]:
    if os.environ.get("FAKE_IPMI_NO_BMC") == "1" or not os.environ.get("FAKE_IPMI_FIXTURE"):
        sys.stderr.write((LOCAL / "ipmitool-no-bmc.stderr").read_text())
        sys.exit(1)
    sys.stdout.write(Path(os.environ["FAKE_IPMI_FIXTURE"]).read_text())
    sys.exit(0)
print(f"fake ipmitool: unsupported {argv}", file=sys.stderr)
sys.exit(1)
