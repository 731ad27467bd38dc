"""Heavy libraries imported on first use, so that commands which never touch them start fast.

``from dlwh._lazy import pandas as pd`` behaves like ``import pandas as pd`` except that pandas is
imported at the first attribute access (``pd.DataFrame``), not when the module is imported. Modules
using it keep ``from __future__ import annotations`` so that annotations do not touch it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """A stand-in for module ``name`` that imports it when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{'' if self._module is None else ' (imported)'}>"


pandas = LazyModule("pandas")
