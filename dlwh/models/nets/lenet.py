"""LeNet-5 (LeCun et al., 1998): 1x32x32 input, tanh, average-pool subsampling, 61,706 parameters.

C3 is fully connected to S2 (the paper's sparse connection table is not reproduced), and the output
layer is a plain linear layer instead of RBF units. Inputs smaller than 32x32 (MNIST's 1x28x28) are
zero-padded to 32x32, as the paper did with its 28x28 digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 for ``in_channels`` x32x32 images and ``num_classes`` outputs."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # C1: 32 -> 28
            nn.Tanh(),
            nn.AvgPool2d(2),  # S2: 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),  # C3: 14 -> 10
            nn.Tanh(),
            nn.AvgPool2d(2),  # S4: 10 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),  # C5
            nn.Tanh(),
            nn.Linear(120, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if h < 32 or w < 32:
            top, left = max(32 - h, 0) // 2, max(32 - w, 0) // 2
            x = F.pad(x, (left, max(32 - w, 0) - left, top, max(32 - h, 0) - top))
        return self.classifier(self.features(x))


def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    """LeNet-5 (default 10 classes, 1 input channel)."""
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
