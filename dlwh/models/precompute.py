"""Regenerate the shipped complexity table: ``python -m dlwh.models.precompute [--out PATH] [--check]``.

Profiles every zoo model at its default input, batch size 1, with fvcore (needs torch and fvcore)
and writes ``dlwh/models/zoo_complexity.csv``. ``--check`` compares a fresh count with the shipped
table instead and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from dlwh.models.complexity import profile
from dlwh.models.registry import list_models
from dlwh.models.table import TABLE_NAME, read_zoo_table, write_zoo_table

DEFAULT_OUT = Path(__file__).with_name(TABLE_NAME)


def zoo_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Fresh table rows for ``names`` (default: the whole zoo), counted by fvcore."""
    rows = []
    for spec in list_models():
        if names is not None and spec.name not in names:
            continue
        p = profile(spec.name)
        rows.append(
            {
                "model": p.model,
                "input": p.input_desc,
                "macs_per_sample": p.macs_per_sample,
                "params": p.params,
                "source": "fvcore",
                "fvcore_version": p.fvcore_version,
                "fvcore_flops_per_sample": p.fvcore_flops_per_sample,
                "unsupported_ops": json.dumps(p.unsupported_ops, sort_keys=True),
            }
        )
    return rows


def differences(fresh: list[dict[str, Any]]) -> list[str]:
    """Lines describing where ``fresh`` rows differ from the shipped table (counts only)."""
    shipped = {(r.model, r.input_desc): r for r in read_zoo_table()}
    out = []
    for row in fresh:
        old = shipped.get((row["model"], row["input"]))
        if old is None:
            out.append(f"{row['model']} {row['input']}: not in the shipped table")
            continue
        for field in ("macs_per_sample", "params", "fvcore_flops_per_sample"):
            if int(row[field]) != getattr(old, field):
                out.append(f"{row['model']} {row['input']}: {field} {getattr(old, field)} -> {row[field]}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dlwh.models.precompute", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the CSV")
    parser.add_argument("--check", action="store_true", help="compare with the shipped table only")
    parser.add_argument("models", nargs="*", help="only these zoo models (with --check)")
    args = parser.parse_args(argv)
    rows = zoo_rows(args.models or None)
    if args.check:
        diff = differences(rows)
        for line in diff:
            print(line)
        print(f"{len(rows)} models checked, {len(diff)} differences")
        return 1 if diff else 0
    buffer = io.StringIO()
    write_zoo_table(rows, buffer)
    args.out.write_text(buffer.getvalue(), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
