"""dlwh.models: the network zoo and its MAC/parameter counts.

Importing this package imports none of torch, fvcore, duckdb or pandas; building a network
(``build_model``) needs torch, counting one (``profile``) torch and fvcore, and importing a CSV
pandas. So GPU nodes with only torch can build the zoo's networks. Public API:

* registry: ``ZOO``, ``ModelSpec``, ``list_models``, ``get_spec``, ``normalise_name``,
  ``is_zoo_model``, ``close_names``, ``build_model``, ``UnknownModelError``
* shipped table: ``read_zoo_table``, ``read_zoo_frame``, ``zoo_complexity``
* counting: ``profile``, ``profile_module``, ``ModelProfile``, ``format_macs``, ``MAC_OPERATORS``
* warehouse: ``seed_zoo_complexity``, ``store_profile``, ``import_complexity_csv``
* ``bert_config``, ``BertConfig``: BERT encoder shapes (build one with ``dlwh.models.nets.bert.bert``)
"""

from __future__ import annotations

from dlwh.models.bert_config import BertConfig, bert_config
from dlwh.models.complexity import MAC_OPERATORS, ModelProfile, format_macs, profile, profile_module
from dlwh.models.importer import ImportResult, import_complexity_csv
from dlwh.models.inputs import normalise_input_desc
from dlwh.models.registry import (
    ZOO,
    ModelSpec,
    UnknownModelError,
    build_model,
    close_names,
    get_spec,
    is_zoo_model,
    list_models,
    normalise_name,
)
from dlwh.models.store import seed_zoo_complexity, store_profile
from dlwh.models.table import ZooRow, read_zoo_frame, read_zoo_table, zoo_complexity

__all__ = [
    "MAC_OPERATORS", "ModelProfile", "format_macs", "profile", "profile_module",
    "ImportResult", "import_complexity_csv", "normalise_input_desc",
    "ZOO", "ModelSpec", "UnknownModelError", "build_model", "close_names", "get_spec", "is_zoo_model",
    "list_models", "normalise_name", "seed_zoo_complexity", "store_profile",
    "ZooRow", "read_zoo_frame", "read_zoo_table", "zoo_complexity", "bert_config", "BertConfig",
]

