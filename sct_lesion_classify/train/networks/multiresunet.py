"""2D MultiResUNet (Ibtehaz & Rahman, Neural Networks 2020;121:74-87).

A faithful port of the authors' Keras reference model:

- *MultiRes block* with ``W = alpha * U`` (alpha = 1.67): three chained 3x3 convolutions with
  ``int(0.167 W)``, ``int(0.333 W)`` and ``int(0.5 W)`` filters (the receptive fields of 3x3, 5x5
  and 7x7 convolutions), concatenated, batch-normalised and added to a 1x1 convolution shortcut,
  then ReLU and batch normalisation;
- *Res path* between encoder and decoder at each level, of length 4, 3, 2, 1 (one 3x3
  convolution plus a 1x1 shortcut per step);
- encoder filters ``U`` = 32, 64, 128, 256, 512 at ``base_filters=32`` (four 2x2 max-poolings, so
  input sizes must be divisible by 16); decoder with 2x2 transposed convolutions.

``width_multiple`` (default 1: the paper's widths) rounds each MultiRes block's three widths up
to a multiple of it. ONNX Runtime's blocked convolutions on x86 work on groups of 8 channels; at
8 the lesion network's architecture ran 1.05-1.18x faster on this project's CPU although it costs
18% more FLOPs: 24-36% more GFLOP/s (``python -m bench --only widths``, three runs).

Every convolution of ``conv2d_bn`` has no bias and is followed by batch normalisation, as in the
reference. The last layer is ``conv2d_bn(1, 1x1)``; this module returns its *logits* (the
training loss applies the sigmoid); :class:`~sct_lesion_classify.train.export.WithSigmoid` adds
it for export. About 7.26 M parameters at ``base_filters=32`` and one input channel.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Sequential):
    """Convolution (no bias, 'same' padding) + batch normalisation + optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class MultiResBlock(nn.Module):
    """MultiRes block: chained 3x3 convolutions (3x3, 5x5, 7x7 receptive fields) + 1x1 shortcut."""

    def __init__(self, in_channels: int, filters: int, alpha: float = 1.67, width_multiple: int = 1) -> None:
        super().__init__()
        width = alpha * filters
        n3, n5, n7 = (-(-int(width * share) // width_multiple) * width_multiple for share in (0.167, 0.333, 0.5))
        self.out_channels = n3 + n5 + n7
        self.shortcut = ConvBN(in_channels, self.out_channels, 1, relu=False)
        self.conv3 = ConvBN(in_channels, n3, 3)
        self.conv5 = ConvBN(n3, n5, 3)
        self.conv7 = ConvBN(n5, n7, 3)
        self.bn_concat = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.bn_out = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        a = self.conv3(x)
        b = self.conv5(a)
        c = self.conv7(b)
        out = self.bn_concat(torch.cat([a, b, c], dim=1))
        return self.bn_out(self.relu(out + shortcut))


class ResPath(nn.Module):
    """Res path of ``length`` residual steps (3x3 convolution + 1x1 shortcut, ReLU, BN)."""

    def __init__(self, in_channels: int, filters: int, length: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList()
        for index in range(length):
            channels = in_channels if index == 0 else filters
            self.steps.append(nn.ModuleDict({
                "shortcut": ConvBN(channels, filters, 1, relu=False),
                "conv": ConvBN(channels, filters, 3),
                "bn": nn.BatchNorm2d(filters),
            }))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step["bn"](self.relu(step["shortcut"](x) + step["conv"](x)))
        return x


class MultiResUNet(nn.Module):
    """2D MultiResUNet returning one logit map per pixel (``(N, out_channels, H, W)``).

    Parameters
    ----------
    in_channels
        Input channels (1: the T2w slice).
    out_channels
        Output channels (1: lesion).
    base_filters
        ``U`` of the first level (32 in the paper); doubles at each of the 5 levels.
    alpha
        Width multiplier of the MultiRes blocks (1.67 in the paper).
    width_multiple
        Each MultiRes block's widths rounded up to a multiple of this (1: the paper's).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_filters: int = 32,
                 alpha: float = 1.67, width_multiple: int = 1) -> None:
        super().__init__()
        filters = [base_filters * 2**level for level in range(5)]
        self.encoders = nn.ModuleList()
        self.res_paths = nn.ModuleList()
        channels = in_channels
        for level in range(5):
            block = MultiResBlock(channels, filters[level], alpha, width_multiple)
            self.encoders.append(block)
            channels = block.out_channels
            if level < 4:
                self.res_paths.append(ResPath(channels, filters[level], length=4 - level))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(3, -1, -1):
            self.ups.append(nn.ConvTranspose2d(channels, filters[level], kernel_size=2, stride=2))
            block = MultiResBlock(filters[level] * 2, filters[level], alpha, width_multiple)
            self.decoders.append(block)
            channels = block.out_channels
        self.head = ConvBN(channels, out_channels, 1, relu=False)
        self.divisible_by = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < 4:
                skips.append(self.res_paths[level](x))
                x = self.pool(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
