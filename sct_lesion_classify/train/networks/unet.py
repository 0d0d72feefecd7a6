"""The cord localizer: a small 2D U-Net on sagittal slices (MONAI ``UNet``).

Why 2D: clinical sagittal T2w images have 3-4 mm thick slices and often only 12-20 of them, so a
3D network would see a handful of voxels across the cord's right-left extent while paying for a
third dimension everywhere. The localizer only needs a coarse cord mask to place the crop box
(margins of several mm are added), so 2D slices resampled to about 1 mm in-plane are enough,
cheap on a CPU and share the slicing code of the lesion model.

Four down-samplings (strides 2), channels 16-32-64-128-256, one residual unit per level:
input sizes must be divisible by 16. Returns logits.
"""

from __future__ import annotations

from torch import nn


def cord_unet(in_channels: int = 1, out_channels: int = 1,
              channels: tuple[int, ...] = (16, 32, 64, 128, 256)) -> nn.Module:
    """A MONAI 2D U-Net with ``len(channels) - 1`` stride-2 down-samplings (logit output)."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                channels=channels, strides=(2,) * (len(channels) - 1), num_res_units=1,
                norm="batch")
