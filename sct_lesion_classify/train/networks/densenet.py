"""The classifiers' network: MONAI DenseNet121 (2D, 3 input channels, one logit).

Input: the paper's per-slice tensor (cT1w or zeros, T2w, lesion mask), 256 x 256
(:func:`sct_lesion_classify.classify.inputs.build_classifier_slices`). The network returns the
logit of the positive class; export adds the sigmoid so the ONNX output is a probability.
"""

from __future__ import annotations

from torch import nn


def densenet121(in_channels: int = 3, out_channels: int = 1) -> nn.Module:
    """MONAI ``DenseNet121(spatial_dims=2)``, randomly initialised, ``out_channels`` logits."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=out_channels)
