"""The model zoo's registry: names, aliases, default inputs and builders. Imports no torch.

Canonical names are lower case (``resnet50``, ``shufflenet_v2_x1_0``, ``bert_base`` ...).
``normalise_name`` maps the common spellings (``ResNet-50``, ``shufflenetv2``, ``bert-base-uncased``)
to them; the same rule is applied in SQL by the ``run_complexity`` view through ``model_aliases``.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable

from dlwh.errors import UsageError
from dlwh.models.inputs import format_input_desc


class UnknownModelError(UsageError):
    """A model name that is neither in the zoo nor one of its aliases."""


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry. ``default_input`` is (C, H, W) for vision, (seq_len,) for text."""

    name: str
    kind: str  # 'vision' or 'text'
    default_input: tuple[int, ...]
    builder: str  # 'module:function' under dlwh.models.nets, called with ``builder_args``
    description: str
    aliases: tuple[str, ...] = ()
    builder_args: tuple[Any, ...] = ()

    @property
    def default_input_desc(self) -> str:
        """The default input as stored in the warehouse: '3x224x224' or 'seq128'."""
        return format_input_desc(self.kind, self.default_input)


_IMAGENET = (3, 224, 224)


def _googlenet_mods() -> list[ModelSpec]:
    what = {
        1: "GoogLeNet without branch 1 (1x1) in every Inception block",
        2: "GoogLeNet without branch 2 (1x1 -> 3x3) in every Inception block",
        3: "GoogLeNet without branch 3 (1x1 -> 3x3, the paper's 5x5) in every Inception block",
        4: "GoogLeNet without branch 4 (pool -> 1x1) in every Inception block",
        5: "GoogLeNet, every Inception block 1 copy of its 1x1 -> 3x3 branch",
        6: "GoogLeNet, every Inception block 2 identical 1x1 -> 3x3 branches",
        7: "GoogLeNet, every Inception block 3 identical 1x1 -> 3x3 branches",
        8: "GoogLeNet, every Inception block 4 identical 1x1 -> 3x3 branches",
        9: "GoogLeNet with the Inception blocks removed (stem, pools, classifier)",
    }
    return [
        ModelSpec(f"googlenet_mod{i}", "vision", _IMAGENET, "googlenet:googlenet_mod", what[i], (), (i,))
        for i in range(1, 10)
    ]


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("lenet5", "vision", (1, 32, 32), "lenet:lenet5", "LeNet-5 (LeCun 1998), 10 classes",
                  ("lenet", "lenet-5")),
        ModelSpec("alexnet", "vision", _IMAGENET, "alexnet:alexnet", "AlexNet (torchvision layout)"),
        ModelSpec("vgg11", "vision", _IMAGENET, "vgg:vgg11", "VGG-11 (configuration A, no BN)", ("vgg-11",)),
        ModelSpec("vgg16", "vision", _IMAGENET, "vgg:vgg16", "VGG-16 (configuration D, no BN)", ("vgg-16",)),
        ModelSpec("resnet18", "vision", _IMAGENET, "resnet:resnet18", "ResNet-18", ("resnet-18",)),
        ModelSpec("resnet34", "vision", _IMAGENET, "resnet:resnet34", "ResNet-34", ("resnet-34",)),
        ModelSpec("resnet50", "vision", _IMAGENET, "resnet:resnet50", "ResNet-50 (v1.5)", ("resnet-50",)),
        ModelSpec("googlenet", "vision", _IMAGENET, "googlenet:googlenet",
                  "GoogLeNet / Inception v1, no auxiliary heads", ("inception_v1", "inceptionv1")),
        *_googlenet_mods(),
        ModelSpec("mobilenet_v2", "vision", _IMAGENET, "mobilenet:mobilenet_v2", "MobileNetV2, width 1.0",
                  ("mobilenetv2", "mobilenet-v2")),
        ModelSpec("shufflenet_v2_x1_0", "vision", _IMAGENET, "shufflenet:shufflenet_v2_x1_0",
                  "ShuffleNetV2 x1.0", ("shufflenetv2", "shufflenet_v2", "shufflenet-v2", "shufflenet_v2_x1.0",
                                        "shufflenetv2_x1", "shufflenetv2_x1.0")),
        ModelSpec("efficientnet_b0", "vision", _IMAGENET, "efficientnet:efficientnet_b0",
                  "EfficientNet-B0 (torchvision layout)", ("efficientnet-b0", "efficientnetb0")),
        ModelSpec("densenet121", "vision", _IMAGENET, "densenet:densenet121", "DenseNet-121 (torchvision layout)",
                  ("densenet-121", "densenet_121")),
        ModelSpec("convnext_tiny", "vision", _IMAGENET, "convnext:convnext_tiny", "ConvNeXt-T (torchvision layout)",
                  ("convnext-tiny", "convnext_t", "convnext-t")),
        ModelSpec("vit_b_16", "vision", _IMAGENET, "vit:vit_b_16",
                  "ViT-B/16 (12 layers, width 768, 12 heads; torchvision's parameters)",
                  ("vit-b-16", "vit_b16", "vitb16", "vit-base-patch16-224")),
        ModelSpec("bert_base", "text", (128,), "bert:bert_base",
                  "BERT base encoder + pooler (12 layers, hidden 768, 12 heads, vocab 30522)",
                  ("bert", "bert-base", "bert-base-uncased", "bert_base_uncased")),
    ]
}


def alias_key(name: str) -> str:
    """The spelling-insensitive key aliases are matched on: lower case, letters and digits only.

    SQL twin: ``regexp_replace(lower(name), '[^a-z0-9]', '', 'g')``.
    """
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in ZOO.values():
        for alias in (spec.name, *spec.aliases):
            table[alias_key(alias)] = spec.name
    return table


ALIASES: dict[str, str] = _alias_table()


def normalise_name(name: str) -> str:
    """The canonical zoo name for ``name`` or one of its aliases; other names lower-cased and stripped.

    ``normalise_name('ResNet-50') == 'resnet50'``, ``normalise_name('bert-base-uncased') ==
    'bert_base'``, ``normalise_name(' MyNet ') == 'mynet'`` (not a zoo model: kept as given).
    """
    return ALIASES.get(alias_key(name), name.strip().lower())


def is_zoo_model(name: str) -> bool:
    """True when ``name`` (any alias) is in the zoo."""
    return alias_key(name) in ALIASES


def close_names(name: str, n: int = 4) -> list[str]:
    """Zoo names that look like ``name`` (for 'did you mean' messages)."""
    key = alias_key(name)
    hits = difflib.get_close_matches(key, list(ALIASES), n=n * 3, cutoff=0.6)
    out: list[str] = []
    for hit in hits:
        if ALIASES[hit] not in out:
            out.append(ALIASES[hit])
    # prefix matches ('resnet' -> resnet18, resnet34, resnet50)
    if key:
        out += [s for s in ZOO if s.startswith(key) and s not in out]
    return out[:n]


def get_spec(name: str) -> ModelSpec:
    """The zoo entry for ``name`` (any alias); raises UnknownModelError listing close names."""
    canonical = ALIASES.get(alias_key(name))
    if canonical is None:
        near = close_names(name)
        hint = f"did you mean {', '.join(near)}?" if near else "see 'dlwh models list'"
        raise UnknownModelError(
            f"unknown model {name!r}; {hint} (or add your own with 'dlwh models import FILE.csv')"
        )
    return ZOO[canonical]


def builder(name: str) -> Callable[..., Any]:
    """The function that builds ``name`` (imports torch); call it with no arguments for the default."""
    spec = get_spec(name)
    module_name, func_name = spec.builder.split(":")
    func = getattr(importlib.import_module(f"dlwh.models.nets.{module_name}"), func_name)
    if spec.builder_args:
        return lambda **kwargs: func(*spec.builder_args, **kwargs)
    return func


def build_model(name: str, **kwargs: Any) -> Any:
    """A fresh ``torch.nn.Module`` for zoo model ``name`` (kwargs go to the builder, e.g. num_classes)."""
    return builder(name)(**kwargs)


def list_models() -> list[ModelSpec]:
    """Every zoo entry, in registry order."""
    return list(ZOO.values())
