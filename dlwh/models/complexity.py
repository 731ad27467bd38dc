"""Count a network's multiply-accumulates (MACs) and parameters with fvcore.

Imports neither torch nor fvcore until ``profile``/``profile_module`` is called.

What is counted: fvcore's ``FlopCountAnalysis`` traces one forward pass (eval mode, no grad) and
counts, per operator, one fused multiply-add as one unit. Its default handlers also count some
element-wise operators (batch norm 2 per element in eval mode, layer/group norm, adaptive average
pooling, upsampling) that are not multiply-accumulates. dlwh's MACs are the sum over the
multiply-accumulate operators only (``MAC_OPERATORS``: convolution, linear, addmm, mm, bmm, matmul,
einsum) -- the convention torchvision's published GFLOPS use (ResNet-50: 4.089 G) -- and fvcore's
whole total is kept beside it as ``fvcore_flops_per_sample``. Operators fvcore has no handler for
(e.g. ``aten::add``, ``aten::max_pool2d``, ``aten::softmax``) count nothing and are listed in
``unsupported_ops`` with how often they ran.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Sequence

from dlwh.errors import DlwhError, UsageError
from dlwh.models.inputs import format_input_desc, parse_input_desc
from dlwh.models.registry import ModelSpec, get_spec

MAC_OPERATORS = frozenset({"conv", "linear", "addmm", "mm", "bmm", "matmul", "einsum"})


@dataclass(frozen=True)
class LayerCount:
    """One module's own share: MACs per sample of the MAC operators it runs itself (not in its
    children) and the parameters it owns itself."""

    layer: str  # dotted module path, e.g. 'layer1.0.conv1'
    layer_type: str  # class name, e.g. 'Conv2d'
    macs: int
    params: int


@dataclass
class ModelProfile:
    """MACs and parameters of one model at one input and batch size (counts per sample unless named total)."""

    model: str
    kind: str
    input_desc: str
    batch_size: int
    macs_total: int
    macs_per_sample: int
    params: int
    fvcore_flops_per_sample: int  # fvcore's own total, norms and pooling included
    by_operator: dict[str, int]  # fvcore operator -> count per sample (MAC and non-MAC operators)
    layers: list[LayerCount]
    unsupported_ops: dict[str, int]  # operator -> times it ran uncounted
    fvcore_version: str

    def top_layers(self, n: int = 10) -> list[LayerCount]:
        """The ``n`` layers with the most MACs."""
        return sorted(self.layers, key=lambda r: (-r.macs, r.layer))[:n]


def _require_torch() -> tuple[Any, Any]:
    try:
        with warnings.catch_warnings():  # fvcore uses torch.jit.script, deprecated in new torch
            warnings.simplefilter("ignore", DeprecationWarning)
            import torch
            from fvcore.nn import FlopCountAnalysis
    except ImportError as err:
        raise DlwhError(
            f"profiling needs torch and fvcore ({err.name or err} is missing); install them with "
            "pip install 'dlwh[models]' -- 'dlwh models list' works without them"
        ) from None
    return torch, FlopCountAnalysis


def fvcore_version() -> str:
    """The installed fvcore version ('' when fvcore is absent)."""
    try:
        return metadata.version("fvcore")
    except metadata.PackageNotFoundError:
        return ""


def _resolve_input(
    kind: str, default: tuple[int, ...], input_shape: str | Sequence[int] | None, seq_len: int | None
) -> tuple[int, ...]:
    if input_shape is not None and seq_len is not None:
        raise UsageError("give either an input shape or a sequence length, not both")
    if kind == "text":
        if input_shape is not None:
            if isinstance(input_shape, str):
                given_kind, dims = parse_input_desc(input_shape)
                if given_kind == "text":
                    return dims
            raise UsageError("a text model takes a sequence length (--seq-len L), not an image shape")
        return (int(seq_len),) if seq_len is not None else default
    if seq_len is not None:
        raise UsageError("an image model takes an input shape (--input CxHxW), not a sequence length")
    if input_shape is None:
        return default
    if isinstance(input_shape, str):
        given_kind, dims = parse_input_desc(input_shape)
        if given_kind == "text":
            raise UsageError("an image model takes an input shape like 3x224x224, not a sequence length")
        return dims
    return tuple(int(d) for d in input_shape)


def check_profile_args(
    name: str, batch_size: int = 1, input_shape: str | Sequence[int] | None = None, seq_len: int | None = None
) -> tuple[ModelSpec, tuple[int, ...]]:
    """Validate ``profile``'s arguments without counting: (zoo entry, input dims) or a DlwhError."""
    spec = get_spec(name)
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, not {batch_size}")
    dims = _resolve_input(spec.kind, spec.default_input, input_shape, seq_len)
    if any(d <= 0 for d in dims):
        raise UsageError(f"input sizes must be positive, not {dims}")
    return spec, dims


def profile(
    name: str,
    batch_size: int = 1,
    input_shape: str | Sequence[int] | None = None,
    seq_len: int | None = None,
) -> ModelProfile:
    """Count MACs and parameters of zoo model ``name`` at ``batch_size`` and the given input.

    ``input_shape`` is (C, H, W) or '3x224x224' for image models (default: the zoo's), ``seq_len``
    the number of tokens for text models (default 128). Needs torch and fvcore.
    """
    spec, dims = check_profile_args(name, batch_size, input_shape, seq_len)
    torch, _ = _require_torch()
    from dlwh.models.registry import build_model

    # Counts depend on shapes only: build on the meta device (no costly random init), then give
    # every tensor zeros (uninitialised memory may hold slow denormals).
    with torch.device("meta"):
        model = build_model(spec.name)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.zero_()
    if spec.kind == "text":
        max_position = model.config.max_position
        if dims[0] > max_position:
            raise UsageError(f"{spec.name} takes at most {max_position} tokens, not {dims[0]}")
        inputs: tuple[Any, ...] = (torch.zeros((batch_size, dims[0]), dtype=torch.long),)
    else:
        inputs = (torch.zeros((batch_size, *dims)),)
    return profile_module(
        model, inputs, model_name=spec.name, kind=spec.kind, input_desc=format_input_desc(spec.kind, dims)
    )


def profile_module(
    module: Any, inputs: tuple[Any, ...], *, model_name: str, kind: str = "vision", input_desc: str = ""
) -> ModelProfile:
    """Count MACs and parameters of any ``torch.nn.Module`` run on ``inputs`` (batch = dim 0 of inputs[0]).

    Use this for your own architectures; store the result with ``dlwh.models.store.store_profile``.
    """
    torch, FlopCountAnalysis = _require_torch()
    batch_size = int(inputs[0].shape[0])
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, inputs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        try:
            fvcore_total = int(analysis.total())
            by_operator = {op: int(v) for op, v in analysis.by_operator().items()}
            by_module_op = analysis.by_module_and_operator()
            unsupported = {op: int(n) for op, n in analysis.unsupported_ops().items()}
        except Exception as err:  # tracing runs the model: shape errors surface here
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DlwhError(f"{model_name} cannot run on input {input_desc or 'given'}: {first}") from None

    def per_sample(value: int) -> int:
        return int(round(value / batch_size))

    def mac_sum(ops: dict[str, int]) -> int:
        return sum(int(v) for op, v in ops.items() if op in MAC_OPERATORS)

    macs_total = mac_sum(by_operator)
    module_macs = {name: mac_sum(ops) for name, ops in by_module_op.items()}
    layers: list[LayerCount] = []
    for name, sub in module.named_modules():
        children = [f"{name}.{c}" if name else c for c, _ in sub.named_children()]
        own_macs = module_macs.get(name, 0) - sum(module_macs.get(c, 0) for c in children)
        own_params = sum(p.numel() for p in sub.parameters(recurse=False))
        if own_macs > 0 or own_params > 0:
            layers.append(LayerCount(name or "(root)", type(sub).__name__, per_sample(own_macs), own_params))
    return ModelProfile(
        model=model_name,
        kind=kind,
        input_desc=input_desc,
        batch_size=batch_size,
        macs_total=macs_total,
        macs_per_sample=per_sample(macs_total),
        params=sum(p.numel() for p in module.parameters()),
        fvcore_flops_per_sample=per_sample(fvcore_total),
        by_operator={op: per_sample(v) for op, v in sorted(by_operator.items(), key=lambda kv: -kv[1])},
        layers=layers,
        unsupported_ops=dict(sorted(unsupported.items())),
        fvcore_version=fvcore_version(),
    )


def format_macs(macs: float) -> str:
    """'4.09 G', '301 M', '417 K' (three significant digits, SI prefixes)."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(macs) >= scale:
            value = macs / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {prefix}"
    return f"{macs:.0f} "
