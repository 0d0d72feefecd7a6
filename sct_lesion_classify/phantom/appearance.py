"""Contrast of the random styles: each layer's intensity from the tissue it is made of.

In the realistic style a layer's intensity is its tissue's value (``anatomy.reference``) times a
pattern (fat in the marrow of each vertebra, a degenerated nucleus, a lesion's texture). A random
style swaps the tissue's value for the one it drew (``style.ContrastDraw``) and keeps the pattern:
this is SynthSeg's "intensity per label", applied to the phantom's own label layers, so that partial
volume stays exact. Lesion parts and the lesion-like spots of ``lookalikes`` are ratios to the cord:
their intensity is ``drawn cord * ratio ** lesion_gamma``, so a lesion stays brighter (a cap darker)
than the cord, as its class says, whatever the cord's own intensity.

Textures (:func:`texture_field`, :func:`textured`): multiplicative smooth noise, drawn on a coarse
grid and interpolated (muscle: elongated along the spine like fibres and fatty streaks; CSF:
pulsation, slow along the canal, no right-left variation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import zoom

from sct_lesion_classify.phantom.anatomy import reference
from sct_lesion_classify.phantom.geometry import AcquisitionGeometry
from sct_lesion_classify.phantom.raster import Layer
from sct_lesion_classify.phantom.style import ContrastDraw

#: Tissue of every layer the generator paints (anatomy, lookalikes).
LAYER_TISSUE: dict[str, str] = {
    "body_fat": "fat", "muscle": "muscle", "viscera": "viscera", "lung": "lung", "heart": "heart",
    "heart_blood": "flow_void", "occipital_bone": "cortical", "cerebellum": "brain",
    "paraspinal": "muscle", "vertebral_cortex": "cortical", "vertebral_marrow": "marrow",
    "disc_annulus": "annulus", "disc_nucleus": "nucleus", "airway": "air", "aorta": "flow_void",
    "ligamentum_flavum": "ligament", "posterior_cortex": "cortical", "posterior_marrow": "marrow",
    "articular_pillar": "marrow", "epidural": "epidural_fat", "csf": "csf", "nerve_root": "cord",
    "cord": "cord", "vessel": "vessel", "csf_flow_void": "csf", "disc_bulge": "annulus",
}
#: Layers whose intensity is a ratio to the cord's (lesion parts, lesion-like spots).
CORD_RELATIVE = frozenset({"halo", "solid", "cyst", "cap", "focus", "bright_blob"})
def restyle(layer: Layer, contrast: ContrastDraw) -> Layer:
    """``layer`` with both channels' intensities taken from ``contrast``.

    Raises
    ------
    KeyError
        A layer name this module does not know (every painted layer must have a tissue).
    """
    if layer.name in CORD_RELATIVE:
        ref_t2, ref_t1 = reference("cord")
        return dataclasses.replace(
            layer, t2=_relative(layer.t2, ref_t2, contrast.t2_of("cord"), contrast.lesion_gamma),
            t1=_relative(layer.t1, ref_t1, contrast.t1_of("cord"), 1.0))
    tissue = LAYER_TISSUE[layer.name]
    ref_t2, ref_t1 = reference(tissue)
    return dataclasses.replace(layer, t2=_scaled(layer.t2, ref_t2, contrast.t2_of(tissue)),
                               t1=_scaled(layer.t1, ref_t1, contrast.t1_of(tissue)))


def _scaled(value: float | np.ndarray, ref: float, new: float) -> float | np.ndarray:
    if ref == 0:  # air: no pattern to keep
        return float(new)
    return value * np.float32(new / ref) if isinstance(value, np.ndarray) else float(value) * new / ref


def _relative(value: float | np.ndarray, ref_cord: float, new_cord: float,
              gamma: float) -> float | np.ndarray:
    ratio = np.maximum(np.asarray(value, dtype=np.float32) / np.float32(ref_cord), 0.0)
    out = np.float32(new_cord) * ratio ** np.float32(gamma)
    return out.astype(np.float32) if isinstance(value, np.ndarray) else float(out)


def texture_field(amplitude: float, correlation_mm: tuple[float, float, float],
                  geometry: AcquisitionGeometry, rng: np.random.Generator) -> np.ndarray | None:
    """A multiplicative pattern ``1 + amplitude * n`` (n: smooth unit noise) over the whole grid.

    ``correlation_mm`` (right-left, anterior-posterior, superior-inferior) is the spacing of the
    coarse grid the noise is drawn on; ``inf`` gives one pattern along that axis (shape 1 there).
    The factor is kept >= 0.2 so that a textured tissue never turns into a hole. None when
    ``amplitude`` is 0.
    """
    if amplitude <= 0:
        return None
    spacing = (geometry.slice_spacing_mm, geometry.pixel_mm, geometry.pixel_mm)
    coarse = tuple(1 if not np.isfinite(c) else int(np.ceil(n * s / c)) + 2
                   for n, s, c in zip(geometry.shape, spacing, correlation_mm))
    out_shape = tuple(1 if not np.isfinite(c) else n for n, c in zip(geometry.shape, correlation_mm))
    noise = rng.standard_normal(coarse).astype(np.float32)
    fine = zoom(noise, [o / c for o, c in zip(out_shape, coarse)], order=1, mode="nearest")
    fine = fine[tuple(slice(0, o) for o in out_shape)]
    fine /= max(float(fine.std()), 1e-6)
    return np.maximum(1.0 + np.float32(amplitude) * fine, np.float32(0.2)).astype(np.float32)


def textured(layer: Layer, field: np.ndarray | None) -> Layer:
    """``layer`` with both intensities multiplied by ``field`` (from :func:`texture_field`) in its box."""
    if field is None:
        return layer
    factor = field[:, layer.y_slice, layer.z_slice]
    return dataclasses.replace(layer, t2=_times(layer.t2, factor), t1=_times(layer.t1, factor))


def _times(value: float | np.ndarray, factor: np.ndarray) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.ndim == 2:  # (ny or 1, nz or 1) in-plane pattern
        value = value[None]
    return (np.asarray(value, dtype=np.float32) * factor).astype(np.float32)
