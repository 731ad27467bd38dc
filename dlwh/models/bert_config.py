"""Shapes of BERT-style encoders (imports no torch; the network is dlwh.models.nets.bert)."""

from __future__ import annotations

from dataclasses import dataclass, replace

# layers, hidden size, attention heads (Turc et al. 2019 for the small ones; Devlin et al. 2019)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


@dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT encoder. ``intermediate_size`` is the feed-forward width (4 x hidden)."""

    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    vocab_size: int = 30522
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    pooler: bool = True


def bert_config(size: str = "base", **overrides: int | float | bool) -> BertConfig:
    """The config of a named size (tiny, mini, small, medium, base, large) with ``overrides`` applied.

    ``intermediate_size`` defaults to 4 x ``hidden_size`` unless overridden.
    """
    if size not in SIZES:
        raise ValueError(f"unknown BERT size {size!r}; choose one of {', '.join(SIZES)}")
    layers, hidden, heads = SIZES[size]
    hidden = int(overrides.get("hidden_size", hidden))
    config = BertConfig(num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=4 * hidden)
    config = replace(config, **overrides)  # type: ignore[arg-type]
    if config.hidden_size % config.num_heads:
        raise ValueError(f"hidden_size {config.hidden_size} is not divisible by num_heads {config.num_heads}")
    return config
