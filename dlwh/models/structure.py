"""What one training step of a network is made of, per layer type: MACs, elements moved, kernels.

``profile_structure`` runs one forward pass, the loss and the backward pass of a model on PyTorch's
``meta`` device (shapes only: no memory, no arithmetic) under a dispatch mode that sees every ATen
operator autograd runs, and sums per category (``CATEGORIES``):

* ``macs``: multiply-accumulates of the matrix operators (convolution and its backward, mm/addmm,
  bmm/baddbmm), forward and backward;
* ``elems``: tensor elements read and written (every tensor input plus every output of the
  operator; multiply by the bytes per element of the precision for bytes);
* ``kernels``: operator calls that do work (views and aliases are not counted), about the kernels a
  GPU launches per step;
* ``params``: parameters of the modules whose weights those operators use (conv, linear, norm,
  embedding), from the modules' own parameters.

Each count is split into a part per sample and a part per step (fixed: weights read, weight
gradients written, kernels) by profiling at batch sizes 1 and 2: per_sample = f(2) - f(1),
fixed = f(1) - per_sample. The shipped table ``zoo_structure.csv`` holds every zoo model at its
default input (``python -m dlwh.models.structure`` regenerates it); ``model_structure`` (migration
0009) holds what users store for their own models. Imports torch only inside ``profile_*``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dlwh.errors import DlwhError

CATEGORIES = ("conv", "depthwise", "linear", "attention", "norm", "elementwise", "pooling", "embedding")
"""Layer types: ``conv`` (groups 1), ``depthwise`` (grouped, depthwise included), ``linear`` (mm,
addmm), ``attention`` (bmm, baddbmm, softmax, scaled dot product), ``norm`` (batch/layer/group norm),
``elementwise`` (activations, residual adds, dropout, copies, concatenation, loss: the rest),
``pooling`` (max/avg/adaptive pooling), ``embedding`` (lookups and their backward)."""

MATRIX = ("conv", "depthwise", "linear", "attention")
TABLE_NAME = "zoo_structure.csv"
COLUMNS = ("model", "input", "category", "macs_per_sample", "macs_fixed", "elems_per_sample", "elems_fixed",
           "kernels", "params")


@dataclass(frozen=True)
class CategoryCount:
    """One layer type's share of a training step (forward + backward) of one model at one input."""

    category: str
    macs_per_sample: float
    macs_fixed: float
    elems_per_sample: float
    elems_fixed: float
    kernels: int
    params: int


@dataclass
class ModelStructure:
    """Per-category counts of one model's training step at ``input_desc`` (see the module doc)."""

    model: str
    input_desc: str
    counts: dict[str, CategoryCount]

    def total(self, field: str) -> float:
        """Sum of ``field`` over categories."""
        return float(sum(getattr(c, field) for c in self.counts.values()))


def _category(name: str, args: tuple[Any, ...]) -> str:
    """The layer type of ATen operator ``name`` (its overload packet's name) called with ``args``."""
    if name in ("convolution", "convolution_backward", "_convolution", "cudnn_convolution"):
        groups = args[-2] if name == "convolution_backward" else args[-1]
        return "depthwise" if int(groups) > 1 else "conv"
    if name in ("mm", "addmm", "linear"):
        return "linear"
    if name in ("bmm", "baddbmm") or "softmax" in name and "log_softmax" not in name or "attention" in name:
        return "attention"
    if "norm" in name and "embedding" not in name:
        return "norm"
    if "pool" in name:
        return "pooling"
    if "embedding" in name:
        return "embedding"
    return "elementwise"


def _macs(name: str, args: tuple[Any, ...], out: Any, torch: Any) -> float:
    """Multiply-accumulates of one matrix operator call (0 for the others)."""
    if name == "mm":
        a, b = args[0], args[1]
        return float(a.shape[0] * a.shape[1] * b.shape[1])
    if name == "addmm":
        a, b = args[1], args[2]
        return float(a.shape[0] * a.shape[1] * b.shape[1])
    if name == "bmm":
        a, b = args[0], args[1]
        return float(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
    if name == "baddbmm":
        a, b = args[1], args[2]
        return float(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
    if name == "convolution":
        weight = args[1]
        return float(out.numel() * weight[0].numel())
    if name == "convolution_backward":
        grad_out, weight, mask = args[0], args[2], args[-1]
        one = float(grad_out.numel() * weight[0].numel())
        return one * (int(bool(mask[0])) + int(bool(mask[1])))
    return 0.0


def _tensors(obj: Any, torch: Any) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o, torch)]
    return []


def _count_step(model: Any, make_inputs: Any, batch_size: int, torch: Any) -> dict[str, list[float]]:
    """{category: [macs, elems, kernels]} of one forward + loss + backward at ``batch_size``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    totals: dict[str, list[float]] = {c: [0.0, 0.0, 0.0] for c in CATEGORIES}

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if getattr(func, "is_view", False) or func.overloadpacket.__name__ in ("detach", "alias", "lift_fresh"):
                return out
            name = func.overloadpacket.__name__.rstrip("_")
            cat = _category(name, args)
            elems = sum(t.numel() for t in _tensors(list(args), torch)) + sum(t.numel() for t in _tensors(out, torch))
            row = totals[cat]
            row[0] += _macs(name, args, out, torch)
            row[1] += elems
            row[2] += 1
            return out

    x, y = make_inputs(batch_size)
    with Counter():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    for p in model.parameters():
        p.grad = None
    return totals


def _param_categories(model: Any, torch: Any) -> dict[str, int]:
    """Parameters per category, from each module's own parameters."""
    nn = torch.nn
    out = {c: 0 for c in CATEGORIES}
    for m in model.modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if not own:
            continue
        if isinstance(m, nn.Conv2d | nn.Conv1d):
            out["depthwise" if m.groups > 1 else "conv"] += own
        elif isinstance(m, nn.Linear):
            out["linear"] += own
        elif isinstance(m, nn.Embedding):
            out["embedding"] += own
        elif "Norm" in type(m).__name__:
            out["norm"] += own
        else:
            out["elementwise"] += own  # class tokens, position embeddings, layer scales
    return out


def profile_module_structure(model: Any, make_inputs: Any, *, model_name: str, input_desc: str) -> ModelStructure:
    """Count a ``torch.nn.Module``'s training step. ``make_inputs(batch_size)`` returns (inputs,
    class targets) on the model's device (use the meta device: shapes only)."""
    import torch

    model.train()
    try:
        one = _count_step(model, make_inputs, 1, torch)
        two = _count_step(model, make_inputs, 2, torch)
    except Exception as err:  # noqa: BLE001 - a model that cannot run on its input
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DlwhError(f"{model_name} cannot run a training step on input {input_desc}: {first}") from None
    params = _param_categories(model, torch)
    counts = {}
    for c in CATEGORIES:
        (m1, e1, k1), (m2, e2, _) = one[c], two[c]
        if k1 == 0 and params[c] == 0:
            continue
        counts[c] = CategoryCount(c, m2 - m1, max(0.0, 2 * m1 - m2), e2 - e1, max(0.0, 2 * e1 - e2), int(k1),
                                  params[c])
    return ModelStructure(model_name, input_desc, counts)


def profile_structure(name: str) -> ModelStructure:
    """Count zoo model ``name``'s training step at its default input (as ``dlwh bench`` trains it)."""
    try:
        import torch
    except ImportError:
        raise DlwhError("counting a model's structure needs torch; install it with pip install 'dlwh[models]'") from None
    from dlwh.models.registry import build_model, get_spec

    spec = get_spec(name)
    with torch.device("meta"):
        net = build_model(spec.name)
        if spec.kind == "text":
            head = torch.nn.Linear(net.config.hidden_size, 2)
            vocab, classes = int(net.config.vocab_size), 2

            class _Classifier(torch.nn.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.encoder, self.head = net, head

                def forward(self, ids: Any) -> Any:
                    out = self.encoder(ids)
                    return self.head(out[1] if isinstance(out, tuple) else out[:, 0])

            model: Any = _Classifier()
        else:
            model = net
            classes = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].out_features

    def make_inputs(b: int) -> tuple[Any, Any]:
        if spec.kind == "text":
            x = torch.zeros((b, *spec.default_input), dtype=torch.long, device="meta")
        else:
            x = torch.zeros((b, *spec.default_input), device="meta")
        return x, torch.zeros((b,), dtype=torch.long, device="meta").clamp(max=classes - 1)

    return profile_module_structure(model, make_inputs, model_name=spec.name, input_desc=spec.default_input_desc)


def structure_rows(s: ModelStructure) -> list[dict[str, Any]]:
    """Table rows (``COLUMNS``) of one structure."""
    return [{"model": s.model, "input": s.input_desc, "category": c.category,
             "macs_per_sample": round(c.macs_per_sample), "macs_fixed": round(c.macs_fixed),
             "elems_per_sample": round(c.elems_per_sample), "elems_fixed": round(c.elems_fixed),
             "kernels": c.kernels, "params": c.params} for c in s.counts.values()]


def store_structure(con: Any, s: ModelStructure) -> int:
    """Replace the ``model_structure`` rows of (model, input) with ``s`` in one transaction; returns
    the rows written. ``estimate_unconstrained`` then prices the model with the roofline."""
    from datetime import datetime, timezone
    from importlib import metadata

    from dlwh.warehouse import transaction

    rows = structure_rows(s)
    cols = {c: [r[c] for r in rows] for c in COLUMNS}
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with transaction(con):
        con.execute("DELETE FROM model_structure WHERE model = ? AND input_desc = ?", [s.model, s.input_desc])
        con.execute(
            "INSERT INTO model_structure (model, input_desc, category, macs_per_sample, macs_fixed, elems_per_sample, "
            "elems_fixed, kernels, params, torch_version, profiled_at) "
            "SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::BIGINT[]), "
            "unnest(?::BIGINT[]), unnest(?::INTEGER[]), unnest(?::BIGINT[]), ?, ?",
            [s.model, s.input_desc, cols["category"], cols["macs_per_sample"], cols["macs_fixed"],
             cols["elems_per_sample"], cols["elems_fixed"], cols["kernels"], cols["params"], torch_version, now])
    return len(rows)


_CACHE: list[dict[str, Any]] | None = None


def read_structure_table() -> list[dict[str, Any]]:
    """Rows of the shipped ``zoo_structure.csv`` (numbers as int), read once."""
    global _CACHE
    if _CACHE is None:
        text = resources.files("dlwh.models").joinpath(TABLE_NAME).read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
        _CACHE = [{k: (v if k in ("model", "input", "category") else int(v)) for k, v in r.items()} for r in rows]
    return [dict(r) for r in _CACHE]


def main(argv: list[str] | None = None) -> int:
    """Regenerate the shipped table (``--out``), or only some models to stdout."""
    from dlwh.models.registry import list_models

    parser = argparse.ArgumentParser(prog="python -m dlwh.models.structure", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(TABLE_NAME))
    parser.add_argument("models", nargs="*", help="only these zoo models (printed, not written)")
    args = parser.parse_args(argv)
    names = args.models or [s.name for s in list_models()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for name in names:
        writer.writerows(structure_rows(profile_structure(name)))
    if args.models:
        print(buffer.getvalue(), end="")
    else:
        args.out.write_text(buffer.getvalue(), encoding="utf-8")
        print(f"wrote {len(names)} models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
