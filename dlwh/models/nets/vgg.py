"""VGG-11 and VGG-16 (Simonyan & Zisserman 2015, configurations A and D, no batch norm)."""

from __future__ import annotations

import torch
from torch import nn

from dlwh.models.nets._init import init_vision_weights

# Output channels per 3x3 convolution; "M" is a 2x2 max pool.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG feature stack, adaptive 7x7 pooling, and the 4096-4096 classifier."""

    def __init__(self, config: list[int | str], num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_vision_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg11(num_classes: int = 1000) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters at 1000 classes."""
    return VGG(CONFIGS["A"], num_classes=num_classes)


def vgg16(num_classes: int = 1000) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters at 1000 classes."""
    return VGG(CONFIGS["D"], num_classes=num_classes)
