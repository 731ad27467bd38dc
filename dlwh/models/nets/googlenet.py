"""GoogLeNet (Szegedy et al. 2015) as torchvision's, without auxiliary heads, plus branch variants.

Like torchvision (whose published counts we match: 6,624,904 parameters, 1.50 GMACs), the third
Inception branch uses a 3x3 convolution where the paper has 5x5, convolutions have no bias and are
followed by batch norm (eps 0.001) and ReLU.

An Inception block has four branches:
  1. 1x1 conv;  2. 1x1 reduce -> 3x3 conv;  3. 1x1 reduce -> 3x3 conv ("5x5" in the paper);
  4. 3x3 max pool -> 1x1 projection.
Variants (every one of the nine Inception blocks is changed the same way; the next block's input
width follows the changed output width, so the network stays consistent):
  * ``googlenet_mod1`` .. ``googlenet_mod4``: branch 1, 2, 3 or 4 removed.
  * ``googlenet_mod5`` .. ``googlenet_mod8``: the block is 1, 2, 3 or 4 *identical* branches, each an
    independently initialised copy of that block's branch 2 (1x1 reduce to ``ch3x3red`` channels,
    then 3x3 conv to ``ch3x3`` channels); the block outputs ``n * ch3x3`` channels.
  * ``googlenet_mod9``: no Inception blocks: the stem (conv1, pool, conv2, conv3, pool), the two
    later max pools, global average pool, dropout and a 192 -> classes linear layer.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# in_channels of 3a is 192; each row: ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj
BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
# A max pool (name, kernel size; stride 2) follows these blocks.
POOL_AFTER = {"inception3b": ("maxpool3", 3), "inception4e": ("maxpool4", 2)}


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, cin: int, cout: int, **kwargs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """An Inception block keeping the branches numbered in ``branches`` (a subset of 1..4)."""

    def __init__(
        self, cin: int, widths: tuple[int, int, int, int, int, int], branches: Sequence[int] = (1, 2, 3, 4)
    ) -> None:
        super().__init__()
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = widths
        makers = {
            1: lambda: (BasicConv2d(cin, ch1x1, kernel_size=1), ch1x1),
            2: lambda: (_reduce_then_3x3(cin, ch3x3red, ch3x3), ch3x3),
            3: lambda: (_reduce_then_3x3(cin, ch5x5red, ch5x5), ch5x5),
            4: lambda: (
                nn.Sequential(
                    nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                    BasicConv2d(cin, pool_proj, kernel_size=1),
                ),
                pool_proj,
            ),
        }
        self.branch_names: list[str] = []
        self.out_channels = 0
        for number in branches:
            module, width = makers[number]()
            self.add_module(f"branch{number}", module)
            self.branch_names.append(f"branch{number}")
            self.out_channels += width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(x) for name in self.branch_names], 1)


class IdenticalInception(nn.Module):
    """An Inception block made of ``n`` copies of the 1x1-reduce -> 3x3 branch."""

    def __init__(self, cin: int, n: int, reduce: int, width: int) -> None:
        super().__init__()
        self.branch_names = [f"branch{i}" for i in range(1, n + 1)]
        for name in self.branch_names:
            self.add_module(name, _reduce_then_3x3(cin, reduce, width))
        self.out_channels = n * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(x) for name in self.branch_names], 1)


def _reduce_then_3x3(cin: int, reduce: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        BasicConv2d(cin, reduce, kernel_size=1), BasicConv2d(reduce, cout, kernel_size=3, padding=1)
    )


class GoogLeNet(nn.Module):
    """GoogLeNet without auxiliary classifiers.

    ``drop_branch`` (1..4) removes that branch from every block; ``identical_branches`` (1..4) makes
    every block that many copies of its 3x3 branch; ``inception=False`` removes the blocks.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        drop_branch: int | None = None,
        identical_branches: int | None = None,
        inception: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        body: list[tuple[str, nn.Module]] = []
        channels = 192
        for name, widths in BLOCKS.items():
            if inception:
                block: Inception | IdenticalInception
                if identical_branches is not None:
                    block = IdenticalInception(channels, identical_branches, widths[1], widths[2])
                else:
                    keep = [b for b in (1, 2, 3, 4) if b != drop_branch]
                    block = Inception(channels, widths, keep)
                body.append((name, block))
                channels = block.out_channels
            if name in POOL_AFTER:
                pool_name, kernel = POOL_AFTER[name]
                body.append((pool_name, nn.MaxPool2d(kernel, stride=2, ceil_mode=True)))
        for name, module in body:
            self.add_module(name, module)
        self.body_names = [name for name, _ in body]
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name in self.body_names:
            x = getattr(self, name)(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def googlenet(num_classes: int = 1000) -> GoogLeNet:
    """GoogLeNet (Inception v1) without auxiliary heads."""
    return GoogLeNet(num_classes=num_classes)


def googlenet_mod(variant: int, num_classes: int = 1000) -> GoogLeNet:
    """GoogLeNet variant 1..9 (see the module docstring)."""
    if 1 <= variant <= 4:
        return GoogLeNet(num_classes, drop_branch=variant)
    if 5 <= variant <= 8:
        return GoogLeNet(num_classes, identical_branches=variant - 4)
    if variant == 9:
        return GoogLeNet(num_classes, inception=False)
    raise ValueError(f"GoogLeNet variant must be 1..9, not {variant}")
