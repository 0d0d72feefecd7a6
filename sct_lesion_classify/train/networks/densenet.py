"""The classifiers' network: MONAI DenseNet121 (2D, 3 input channels, one logit), and its export
wrapper with a class-activation map.

Input: the paper's per-slice tensor (cT1w or zeros, T2w, lesion mask), 256 x 256
(:func:`sct_lesion_classify.classify.inputs.build_classifier_slices`). The network returns the
logit of the positive class; export adds the sigmoid so the ONNX output is a probability, and
:class:`WithCam` adds a second output, ``cam``, the class-activation map of the positive class.

Why CAM in the graph instead of Grad-CAM with autograd
------------------------------------------------------
ONNX Runtime cannot backpropagate, and the inference path runs without torch (SCT's Python). But
MONAI's DenseNet ends in ``ReLU -> global average pool -> Linear(C, 1)``: with ``A`` the ReLU'd last
feature maps (``C x h x w``) and ``w`` the linear weights, ``logit = sum_c w_c mean_ij A_cij + b``,
so ``d logit / d A_cij = w_c / (h w)``, constant in space. Grad-CAM's channel weights (the spatial
mean of that gradient) are therefore ``w_c / (h w)`` and Grad-CAM at the last feature layer is
``relu(sum_c w_c A_c) / (h w)``: CAM (Zhou et al. 2016) up to a positive constant. The exported
``cam`` output is ``sum_c (w_c / (h w)) A_c`` (N, h, w), i.e. Grad-CAM exactly, *before* its final
relu: positive values are evidence for the positive class, negative values evidence against it,
and its sum over the cells plus ``b`` is the logit (each cell's contribution to the logit; this
scale also keeps the ONNX parity check meaningful at 1e-4). Inference applies the relu
(``classify.gradcam``). tests/test_gradcam.py checks the equality against autograd Grad-CAM of the
PyTorch model.
"""

from __future__ import annotations

from torch import nn


def densenet121(in_channels: int = 3, out_channels: int = 1) -> nn.Module:
    """MONAI ``DenseNet121(spatial_dims=2)``, randomly initialised, ``out_channels`` logits."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=out_channels)


class WithCam(nn.Module):
    """A MONAI DenseNet (one logit) exported with two outputs: ``(sigmoid(logit), cam)``.

    ``cam[n] = sum_c w_c relu(features(x))[n, c] / (h w)``, shape ``(N, h, w)`` at the resolution of the
    last feature maps (input size / 32); see the module docstring for why this is Grad-CAM.
    The probability goes through the network's own ``class_layers`` (bit-identical to
    :func:`sct_lesion_classify.train.export.with_sigmoid`).
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        layers = getattr(inner, "class_layers", None)
        if not hasattr(inner, "features") or layers is None or not hasattr(layers, "out"):
            raise TypeError("WithCam needs a MONAI DenseNet (features + class_layers.out)")
        if layers.out.out_features != 1:
            raise TypeError(f"WithCam needs one output logit, the network has {layers.out.out_features}")
        self.inner = inner

    def forward(self, x):
        import torch

        features = self.inner.features(x)
        layers = self.inner.class_layers
        activations = torch.relu(features)  # before class_layers, whose ReLU may be in place
        probability = torch.sigmoid(layers(features))
        cells = activations.shape[2] * activations.shape[3]
        cam = torch.einsum("nchw,c->nhw", activations, layers.out.weight[0] / cells)
        return probability, cam
