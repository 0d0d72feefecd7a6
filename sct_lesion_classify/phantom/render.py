"""Rendering: layers -> T2w (and cT1w) volumes with partial volume, bias field and Rician noise.

:func:`paint_layers` paints (exact partial volume, masks); :func:`render` adds the realistic
style's acquisition; the random styles add theirs instead (``artefacts``).

Partial volume across the thick sagittal slices is exact (see ``raster``); in-plane, voxels are
point-sampled at 0.5-0.8 mm. A smooth multiplicative bias field (receive-coil profile: brighter
posteriorly, near the spine array, with a low-order polynomial variation) and Rician noise (the
magnitude of the complex signal plus complex Gaussian noise) follow. T2w is stored as integers,
as scanners do, so the volumes returned here are already integer-valued.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom.geometry import AcquisitionGeometry
from sct_lesion_classify.phantom.raster import Layer, paint, slab_fraction


@dataclass(frozen=True)
class Rendered:
    t2w: np.ndarray          # float32 (integer-valued once acquired)
    t1c: np.ndarray | None
    cord_mask: np.ndarray    # bool
    lesion_mask: np.ndarray  # bool


def render(geometry: AcquisitionGeometry, anatomy_layers: list[Layer], cord: Layer | None,
           cord_rows: np.ndarray, lesion_layers: list[tuple[bool, Layer]], rng: np.random.Generator,
           *, with_t1c: bool = False) -> Rendered:
    """Paint the layers and add the acquisition's bias field and noise.

    ``lesion_layers`` holds (counts for the lesion mask, layer) pairs in painting order;
    ``cord_rows`` (nz,) says which z rows count for the cord mask.
    """
    painted = paint_layers(geometry, anatomy_layers, cord, cord_rows, lesion_layers, with_t1c=with_t1c)
    bias = _bias_field(geometry, rng)
    gain = float(rng.uniform(1.2, 2.4))
    t2_out = _acquire(painted.t2w, bias, gain, float(rng.uniform(0.02, 0.05)) * 1000.0, rng)
    t1_out = None
    if painted.t1c is not None:
        t1_out = _acquire(painted.t1c, bias, gain * float(rng.uniform(0.8, 1.2)),
                          float(rng.uniform(0.015, 0.035)) * 900.0, rng)
    return Rendered(t2_out, t1_out, painted.cord_mask, painted.lesion_mask)


def paint_layers(geometry: AcquisitionGeometry, anatomy_layers: list[Layer], cord: Layer | None,
                 cord_rows: np.ndarray, lesion_layers: list[tuple[bool, Layer]], *,
                 with_t1c: bool = False, background: tuple[float, float] = (0.0, 0.0)) -> Rendered:
    """The noise-free images and the masks: layers painted in order on ``background`` (T2w, T1w).

    The cord mask is where the cord layer fills at least half of a voxel (on ``cord_rows``); the
    lesion mask where a lesion layer that counts does, inside the cord mask.
    """
    shape = geometry.shape
    x = geometry.x_centers()
    thickness = geometry.slice_thickness_mm
    t2 = _canvas(shape, background[0])
    t1 = _canvas(shape, background[1]) if with_t1c else None
    cord_mask = np.zeros(shape, dtype=bool)
    lesion_fraction = np.zeros(shape, dtype=np.float32)

    def draw(layer: Layer) -> np.ndarray:
        fraction = slab_fraction(layer.lo, layer.hi, x, thickness)
        paint(t2, layer, fraction, layer.t2)
        if t1 is not None:
            paint(t1, layer, fraction, layer.t1)
        return fraction

    for layer in anatomy_layers:
        draw(layer)
    if cord is not None:
        fraction = draw(cord)
        cord_mask[:, cord.y_slice, cord.z_slice] = (fraction >= 0.5) & cord_rows[cord.z_slice][None, None]
    for in_mask, layer in lesion_layers:
        fraction = draw(layer)
        if in_mask:
            region = lesion_fraction[:, layer.y_slice, layer.z_slice]
            np.maximum(region, fraction, out=region)
    lesion_mask = (lesion_fraction >= 0.5) & cord_mask
    return Rendered(t2, t1, cord_mask, lesion_mask)


def _canvas(shape: tuple[int, int, int], value: float) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32) if value == 0 else np.full(shape, value, dtype=np.float32)


def _bias_field(geometry: AcquisitionGeometry, rng: np.random.Generator) -> np.ndarray:
    nx, ny, nz = geometry.shape
    xn = np.linspace(-1, 1, nx, dtype=np.float32)[:, None, None]
    yn = np.linspace(-1, 1, ny, dtype=np.float32)[None, :, None]
    zn = np.linspace(-1, 1, nz, dtype=np.float32)[None, None, :]
    c = rng.normal(0.0, 0.12, 6).astype(np.float32)
    coil = np.float32(rng.uniform(0.15, 0.45))
    log_bias = (c[0] * xn + (c[1] - coil) * yn + c[2] * zn + c[3] * zn * zn + c[4] * yn * zn
                + c[5] * yn * yn - np.float32(0.15) * xn * xn)
    return np.exp(log_bias).astype(np.float32)


def _acquire(image: np.ndarray, bias: np.ndarray, gain: float, sigma: float,
             rng: np.random.Generator) -> np.ndarray:
    signal = image * bias
    real = signal + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    magnitude = np.sqrt(real * real + imag * imag)
    magnitude *= np.float32(gain)
    return np.clip(np.rint(magnitude), 0, 32767).astype(np.float32)
