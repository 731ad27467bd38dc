"""dlwh: the deep-learning energy warehouse.

From a notebook::

    import dlwh
    dlwh.ingest(["traces/"])                                   # DataFrame, one row per file
    dlwh.connect().sql("SELECT * FROM run_energy").df()        # any SQL on the warehouse
    dlwh.predict([150, 200], model="resnet50", batch_size=128) # after dlwh fit
    dlwh.simulate(budget_epochs=100, model="resnet50", batch_size=128)

``connect``, ``ingest``, ``predict`` and ``simulate`` live in ``dlwh.api`` and are loaded on first
use, so ``import dlwh`` (and ``import dlwh.collect`` on a GPU node) imports neither duckdb nor pandas.
"""

import typing as _typing

__version__ = "0.1.0"

_API = ("connect", "ingest", "predict", "simulate")
__all__ = ["__version__", *_API]

if _typing.TYPE_CHECKING:
    from dlwh.api import connect, ingest, predict, simulate  # noqa: F401


def __getattr__(name: str) -> object:
    """``dlwh.connect`` and friends: import ``dlwh.api`` on first use (PEP 562)."""
    if name in _API:
        from dlwh import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dlwh' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
