"""Input descriptions as stored in the warehouse: '3x224x224' (image C x H x W) or 'seq128' (tokens)."""

from __future__ import annotations

import re

from dlwh.errors import UsageError

_DIMS = re.compile(r"^\(?\s*(\d+(?:\s*[x,*]\s*\d+)*)\s*,?\s*\)?$")
_SEQ = re.compile(r"^(?:seq(?:_?len)?)\s*[=:]?\s*(\d+)$")


def format_input_desc(kind: str, dims: tuple[int, ...]) -> str:
    """'seq128' for text models (dims = (seq_len,)), else the dims joined by 'x'."""
    if kind == "text":
        return f"seq{dims[0]}"
    return "x".join(str(d) for d in dims)


def normalise_input_desc(text: str) -> str:
    """Canonical form of an input description: '3 x 224 x 224', '(3, 224, 224)' -> '3x224x224';
    'seq=128', 'seq_len 128', 'SEQ128' -> 'seq128'. Raises UsageError otherwise."""
    s = str(text).strip().lower()
    seq = _SEQ.match(s)
    if seq:
        length = int(seq.group(1))
        if length <= 0:
            raise UsageError(f"sequence length must be positive, not {length}")
        return f"seq{length}"
    dims = _DIMS.match(s)
    if dims:
        values = [int(v) for v in re.split(r"\s*[x,*]\s*", dims.group(1))]
        if any(v <= 0 for v in values):
            raise UsageError(f"input {text!r} has a zero dimension; give sizes like 3x224x224")
        return "x".join(str(v) for v in values)
    raise UsageError(f"cannot read input {text!r}; give image sizes like 3x224x224 or a sequence like seq128")


def parse_input_desc(text: str) -> tuple[str, tuple[int, ...]]:
    """('text', (seq_len,)) or ('vision', dims) for a description."""
    desc = normalise_input_desc(text)
    if desc.startswith("seq"):
        return "text", (int(desc[3:]),)
    return "vision", tuple(int(v) for v in desc.split("x"))
