"""Weight initialisation shared by the vision networks (the usual torchvision-style scheme)."""

from __future__ import annotations

from torch import nn


def init_vision_weights(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """Kaiming-normal convolutions, unit/zero norms, N(0, ``linear_std``) linear layers.

    ``linear_std=None`` leaves linear layers at PyTorch's default initialisation.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
