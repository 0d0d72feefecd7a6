"""Grad-CAM maps of the classifiers, from the CAM output of their ONNX graph, on the image grid.

Why there is no autograd here: ONNX Runtime cannot backpropagate and the inference path runs
without torch. The classifiers (MONAI DenseNet121) end in ``ReLU -> global average pool ->
Linear``, for which the gradient of the logit with respect to the last feature maps is the linear
weight divided by ``h * w``, constant in space; Grad-CAM at that layer is therefore exactly the
class-activation map ``relu(sum_c w_c A_c)`` up to a positive constant. Packages exported by this
version compute ``sum_c w_c A_c / (h w)`` (Grad-CAM before its relu) inside the graph (card ``output.cam_tensor``, see
:mod:`sct_lesion_classify.train.networks.densenet`), so ``-gradcam 1`` needs only ONNX Runtime.

From the network's ``(N, h, w)`` CAM (h, w = input size / 32, e.g. 8 x 8 for 256 x 256) to a
volume (:func:`cam_volume`):

1. bilinear upsampling to the classifier input grid (``spatial_size``, e.g. 256 x 256), pixel
   centres aligned (each CAM cell covers a ``32 x 32`` block of the input);
2. the exact inverse of the per-slice resampling of
   :func:`~sct_lesion_classify.classify.inputs.build_classifier_slices` (the ``resampler`` the
   :class:`~sct_lesion_classify.classify.inputs.ClassifierSlices` carry, ``.backward``: the
   padding added to make the slice square is dropped, the rest resized back to the slice's native
   in-plane shape);
3. each slice is placed at its sagittal index in a canonical volume; slices the classifier did not
   see (no lesion) are 0;
4. ``relu``, then division by the maximum over the whole volume: values in [0, 1] per model,
   1 at the strongest evidence for the model's positive class in this subject. A map with no
   positive value (no evidence for the positive class anywhere) stays all zeros. Maps of
   different models or subjects are therefore not comparable in absolute terms.
"""

from __future__ import annotations

import numpy as np

from sct_lesion_classify.classify.inputs import ClassifierSlices
from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.io.resample import SliceResampler


def upsample_cam(cam: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``(N, h, w)`` CAMs to ``(N, *out_shape)`` (pixel centres aligned)."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 3:
        raise ModelError(f"a CAM must be (N, h, w), got shape {cam.shape}")
    height, width = int(out_shape[0]), int(out_shape[1])
    h, w = cam.shape[1:]
    resampler = SliceResampler((h, w), (height / h, width / w), (height, width), (1.0, 1.0))
    return resampler.forward(cam, order=1)


def cam_volume(cam: np.ndarray, slices: ClassifierSlices) -> np.ndarray:
    """The CAM of the classified slices as a float32 canonical volume in [0, 1].

    Parameters
    ----------
    cam
        The network's CAM output ``(N, h, w)`` for the ``N`` slices it classified, in their order.
    slices
        The classifier input the CAM was computed on: its slice indices, its resampling (inverted
        here) and the canonical shape of the image it was cut from.
    """
    cam = np.asarray(cam, dtype=np.float32)
    volume = np.zeros(slices.volume_shape, dtype=np.float32)
    if cam.shape[0] != len(slices.slice_indices):
        raise ModelError(f"{cam.shape[0]} CAM slices for {len(slices.slice_indices)} classified "
                         "slices")
    if slices.empty:
        return volume
    resampler = slices.resampler
    on_input_grid = upsample_cam(cam, resampler.out_shape)
    native = resampler.backward(on_input_grid, order=1)
    volume[list(slices.slice_indices)] = np.maximum(native, 0.0)
    peak = float(volume.max())
    if peak > 0:
        volume /= peak
    return volume
