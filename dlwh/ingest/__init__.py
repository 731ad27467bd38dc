"""dlwh.ingest: trace files into the warehouse (loader, formats, the Trace protocol).

The package is also callable: ``dlwh.ingest(paths, ...)`` is ``dlwh.api.ingest`` (the notebook API).
Python sets the attribute ``dlwh.ingest`` to this package as soon as any of its modules is imported,
so the function and the package share the name by making the package's module object callable.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _CallablePackage(ModuleType):
    """This package's module type: calling it calls ``dlwh.api.ingest``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from dlwh.api import ingest

        return ingest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
