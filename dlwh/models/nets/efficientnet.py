"""EfficientNet-B0 (Tan and Le 2019), laid out as torchvision's: 5,288,548 parameters."""

from __future__ import annotations

import torch
from torch import nn

from dlwh.models.nets._init import init_vision_weights


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, eps=1e-3)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Global pool, 1x1 conv down (SiLU), 1x1 conv up (sigmoid), channel-wise scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.SiLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))


class MBConv(nn.Module):
    """1x1 expansion, kxk depthwise, squeeze-excite, 1x1 projection; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, 1))
        layers += [_conv_bn(hidden, hidden, k, stride, groups=hidden), SqueezeExcite(hidden, max(1, cin // 4)),
                   _conv_bn(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


# (expand ratio, kernel, stride, in channels, out channels, layers)
_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
       (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


class EfficientNet(nn.Module):
    """Stem, MBConv stages, 1x1 head to 1280 channels, dropout 0.2, linear classifier."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        for expand, k, stride, cin, cout, n in _B0:
            layers.append(nn.Sequential(*[MBConv(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, expand)
                                          for i in range(n)]))
        layers.append(_conv_bn(320, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        init_vision_weights(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0 at 224x224."""
    return EfficientNet(num_classes=num_classes)
