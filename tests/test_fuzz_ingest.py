"""The fuzzing harness (benchmarks/fuzz_ingest.py) on a fixed seed and a bounded count: damaged copies of
every fixture and test trace, all in one folder ingest. The full 10,000 run writes docs/reliability.md."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_CASES = 300


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_ingest", ROOT / "benchmarks" / "fuzz_ingest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_ingest"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_mutations_are_deterministic_and_each_changes_the_bytes():
    fuzz = _harness()
    seed = fuzz.Seed(Path("gpu.csv"), "gpu.csv", b"timestamp, power.draw [W]\n2024/10/30 18:42:33.189, 22.89 W\n", None)
    for name, mutation in sorted(fuzz.MUTATIONS.items()):
        out = mutation(seed.data, random.Random(7))
        assert out is None or isinstance(out, bytes), name
    first = [fuzz.mutate(seed, random.Random(i)) for i in range(50)]
    assert first == [fuzz.mutate(seed, random.Random(i)) for i in range(50)]
    assert all(data != seed.data and names for data, names in first)
    assert fuzz.MUTATIONS["far_date"](seed.data, random.Random(1)).split(b"\n")[1][:4] in fuzz.YEARS
    assert fuzz.cause_of("power of gpu0 is -5.0 W at 2024-10-30 18:42:33 UTC; must be within 0.0..5000.0 W") == \
        "power of gpuN is N W at N UTC; must be within N W"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_damaged_inputs_never_crash_stall_poison_or_change_the_warehouse():
    fuzz = _harness()
    report = fuzz.run(0, CI_CASES)
    assert report.files >= CI_CASES
    assert report.unexpected == []
    assert report.slow == []
    assert report.changed == []
    assert report.poisoned == []
    assert report.folder_complete
    assert report.outcomes["failed"] > 0 and report.outcomes["loaded"] > 0
