"""One span per layer and pass: forward and backward hooks on a torch model.

``record_layers(model)`` registers hooks that write a span of kind ``layer`` (name = the
module's qualified name, attrs ``layer_type`` and ``pass``: ``forward`` or ``backward``) each time a
layer runs. It is switched per run: by the ``enabled`` argument, else by ``DLWH_LAYER_SPANS=1``
(which ``dlwh collect --layers`` sets), and it does nothing when spans are off. ``.remove()``
(or leaving its ``with`` block) takes every hook off again.

Backward times come from autograd hooks, not module backward hooks (those wrap outputs in a
view and break in-place operations such as ``out += identity``): a layer's backward span starts
when autograd is about to run the node that produced the layer's output and ends when the
gradients for all of its inputs that need one are ready (for a layer whose inputs need none, when
that node has run). Without ``sync=True`` GPU layers are timed by their launches, not their
kernels.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable, Optional

from dlwh.collect import spans as _spans

ENV_LAYER_SPANS = "DLWH_LAYER_SPANS"


def layer_spans_requested() -> bool:
    """True when ``DLWH_LAYER_SPANS`` asks for layer spans (1, true, yes, on)."""
    return os.environ.get(ENV_LAYER_SPANS, "").strip().lower() in ("1", "true", "yes", "on")


def _tensors(obj: Any) -> list[Any]:
    """Tensors in obj (a tensor, or a flat tuple/list/dict of them)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for t in obj if isinstance(t, torch.Tensor)]
    if isinstance(obj, dict):
        return [t for t in obj.values() if isinstance(t, torch.Tensor)]
    return []


class LayerRecorder:
    """The hooks that :func:`record_layers` registered; ``remove()`` takes them off."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.active = False

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.active = False

    def __enter__(self) -> "LayerRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class _Backward:
    """Open state of one layer call's backward span."""

    __slots__ = ("name", "attrs", "t0", "pending", "parent", "done")

    def __init__(self, name: str, attrs: dict[str, Any], pending: int) -> None:
        self.name = name
        self.attrs = attrs
        self.t0: Optional[int] = None
        self.pending = pending
        self.parent: Optional[str] = None
        self.done = False


def record_layers(
    model: Any,
    *,
    enabled: Optional[bool] = None,
    backward: bool = True,
    leaves_only: bool = True,
    sync: bool = False,
    prefix: str = "",
) -> LayerRecorder:
    """Record one span per layer call of ``model`` (a ``torch.nn.Module``).

    enabled: None means ``DLWH_LAYER_SPANS``; spans must also be on (``dlwh collect`` or
    :func:`dlwh.collect.set_run_dir`). leaves_only: hook only modules without children (else every
    module, nested spans get parents). sync: ``torch.cuda.synchronize()`` at every edge (accurate
    GPU times, slow). Returns a :class:`LayerRecorder`.
    """
    rec = LayerRecorder()
    if enabled is None:
        enabled = layer_spans_requested()
    if not enabled or not _spans.enabled():
        return rec
    import torch

    mods: Iterable[tuple[str, Any]] = model.named_modules()
    for qname, module in mods:
        if leaves_only and any(True for _ in module.children()):
            continue
        name = prefix + (qname or type(module).__name__)
        _hook(rec, torch, module, name, backward, sync)
    rec.active = True
    return rec


def _hook(rec: LayerRecorder, torch: Any, module: Any, name: str, backward: bool, sync: bool) -> None:
    layer_type = type(module).__name__
    open_calls: list[tuple[str, Optional[str], int]] = []  # (span id, parent, t0) per active call

    def pre(mod: Any, args: Any) -> None:
        if sync:
            _spans._cuda_sync()
        st = _spans._stack()
        sid = _spans.new_span_id()
        open_calls.append((sid, st[-1] if st else None, time.monotonic_ns()))
        st.append(sid)

    def post(mod: Any, args: Any, output: Any) -> None:
        if not open_calls:
            return
        if sync:
            _spans._cuda_sync()
        t1 = time.monotonic_ns()
        sid, parent, t0 = open_calls.pop()
        st = _spans._stack()
        if st and st[-1] == sid:
            st.pop()
        _spans.write_span("layer", name, t0, t1,
                          {"layer_type": layer_type, "pass": "forward", "pid": os.getpid()},
                          sid, parent)
        if backward and torch.is_grad_enabled():
            _arm_backward(torch, name, layer_type, args, output, sync)

    rec.handles.append(module.register_forward_pre_hook(pre))
    rec.handles.append(module.register_forward_hook(post))


def _arm_backward(torch: Any, name: str, layer_type: str, args: Any, output: Any, sync: bool) -> None:
    """Hook autograd so this call's backward becomes one span."""
    outs = [t for t in _tensors(output) if t.requires_grad and t.grad_fn is not None]
    if not outs:
        return
    node = outs[0].grad_fn
    # an input modified in place is the output itself: its gradient is not the layer's end
    ins = [t for t in _tensors(args) if t.requires_grad and not any(t is o for o in outs)]
    state = _Backward(name, {"layer_type": layer_type, "pass": "backward", "pid": os.getpid()},
                      len(ins))

    def started(*_: Any) -> None:
        if state.t0 is None:
            if sync:
                _spans._cuda_sync()
            state.t0 = time.monotonic_ns()
            state.parent = _spans.current_span_id(fallback_to_main=True)

    def finish() -> None:
        if state.done or state.t0 is None:
            return
        state.done = True
        if sync:
            _spans._cuda_sync()
        _spans.write_span("layer", state.name, state.t0, time.monotonic_ns(), state.attrs,
                          None, state.parent)

    def input_ready(grad: Any) -> None:
        state.pending -= 1
        if state.pending <= 0:
            finish()

    node.register_prehook(started)
    if ins:
        for t in ins:
            t.register_hook(input_ready)
    else:
        node.register_hook(lambda *_: finish())
