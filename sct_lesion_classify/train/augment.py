"""Data augmentation of 2D training samples (MONAI dictionary transforms).

Spatial transforms (rotation and scaling, elastic deformation, flips) move the image channels and
the label together (labels with nearest-neighbour interpolation); synthetic lesions may then be
painted inside a cord label (:mod:`.lesion_paint`); intensity transforms (a random intensity
curve, brightness, contrast, gamma, Gaussian noise, Gaussian blur) touch the image channels only.
Every sample is augmented with its own seed (:meth:`Augmenter.__call__`), so a run is reproducible
whatever the number of data-loader workers, and a resumed run draws the same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.train.lesion_paint import RandCordLesionPaintd


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the augmentations (per sample).

    Attributes
    ----------
    rotation_deg, scale
        Random in-plane rotation in [-rotation_deg, rotation_deg] and isotropic scaling in
        [1 - scale, 1 + scale], applied together with probability ``affine_prob``.
    elastic_prob
        Probability of an elastic deformation (control points every 32 pixels, 1-3 pixels).
    flip_prob
        Probability of a flip along each in-plane axis (A-P and S-I), independently.
    brightness, contrast, gamma
        Additive shift in [-brightness, brightness], multiplicative factor in
        [1 - contrast, 1 + contrast], gamma in ``gamma``; each with probability ``intensity_prob``.
    noise_std
        Standard deviation of additive Gaussian noise (probability ``intensity_prob``).
    blur_sigma
        Range of the Gaussian blur sigma in pixels (probability ``intensity_prob / 2``).
    curve_prob, curve_points
        Probability of a random intensity curve (:class:`RandIntensityCurved`, before the other
        intensity transforms), and the range of its number of control points. 0 by default: the
        bundled models were trained without it (``train --intensity-curve``).
    paint_prob
        Probability of synthetic lesions painted inside the label, which must then be the cord
        (:class:`~.lesion_paint.RandCordLesionPaintd`, after the spatial transforms and before the
        intensity curve). 0 by default (``train --paint-lesions``, the cord localizer only).
    """

    rotation_deg: float = 10.0
    scale: float = 0.1
    affine_prob: float = 0.5
    elastic_prob: float = 0.2
    flip_prob: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.03
    blur_sigma: tuple[float, float] = (0.25, 1.0)
    intensity_prob: float = 0.3
    curve_prob: float = 0.0
    curve_points: tuple[int, int] = (4, 8)
    paint_prob: float = 0.0


NO_AUGMENTATION = AugmentConfig(affine_prob=0.0, elastic_prob=0.0, flip_prob=0.0, intensity_prob=0.0)


class RandIntensityCurved:
    """A random, not necessarily monotonic, intensity curve on the image channels (a contrast change).

    With probability ``prob``, each image channel's intensities between its 0.5th and 99.5th
    percentiles are mapped onto [0, 1], passed through a piecewise-linear curve whose ``n`` control
    points (``n`` drawn in ``points``, evenly spaced) take uniform random values in [0, 1], and
    brought back to the channel's mean and standard deviation. Every channel of a sample gets the
    same curve (a 2.5D sample's neighbour slices stay alike); a constant channel, such as the zeros
    of a T2w-only classifier's cT1w channel, is left as it is. Tissues keep their
    boundaries but swap brightness at random: CSF may come out darker than the cord, fat dark, muscle
    bright. SynthSeg (Billot et al., Medical Image Analysis 2023) draws each label's intensity at
    random for that reason; this draws a curve over the intensities instead, since the training
    images carry no tissue labels beyond the cord and the lesion. MONAI's ``RandHistogramShiftd``
    draws only increasing curves, which never reverse a contrast.

    A dictionary transform of MONAI's calling convention; :class:`Augmenter` seeds it for every
    sample (:meth:`set_random_state`), as ``Compose.set_random_state`` seeds MONAI's own.
    """

    def __init__(self, keys: tuple[str, ...], prob: float, points: tuple[int, int] = (4, 8)) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        if not 2 <= points[0] <= points[1]:
            raise ValueError(f"points must be an increasing pair of at least 2, got {points}")
        self.keys, self.prob, self.points = tuple(keys), float(prob), (int(points[0]), int(points[1]))
        self._rng = np.random.default_rng(0)

    def set_random_state(self, seed: int) -> "RandIntensityCurved":
        """Draw the next curve from ``seed``."""
        self._rng = np.random.default_rng(int(seed))
        return self

    def draw(self) -> np.ndarray | None:
        """The control values of the next curve, or None when this sample is left as it is."""
        if self.prob <= 0.0 or self._rng.random() >= self.prob:
            return None
        return self._rng.uniform(0.0, 1.0, int(self._rng.integers(self.points[0], self.points[1] + 1)))

    @staticmethod
    def apply(image: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``image`` (C, H, W) through the curve of control ``values``, channel by channel (see the
        class docstring)."""
        image = np.asarray(image, dtype=np.float32)
        return np.stack([_curve_channel(channel, values) for channel in image])

    def __call__(self, data: dict) -> dict:
        values = self.draw()
        if values is None:
            return data
        out = dict(data)
        for key in self.keys:
            out[key] = self.apply(np.asarray(data[key]), values)
        return out


def _curve_channel(channel: np.ndarray, values: np.ndarray) -> np.ndarray:
    low, high = np.percentile(channel, (0.5, 99.5))
    if not high > low:
        return channel
    unit = np.clip((channel - low) / (high - low), 0.0, 1.0)
    curved = np.interp(unit, np.linspace(0.0, 1.0, len(values)), values).astype(np.float32)
    spread = float(curved.std())
    if spread < 1e-6:   # a flat stretch of the curve over the whole channel: keep the channel
        return channel
    return ((curved - curved.mean()) / spread * float(channel.std()) + float(channel.mean())).astype(np.float32)


class Augmenter:
    """Apply :class:`AugmentConfig` to ``(image (C,H,W), label (L,H,W))`` numpy pairs.

    Parameters
    ----------
    config
        The augmentation ranges.
    clip
        Range the augmented image channels are clipped back to (e.g. ``(0, 1)`` for the
        classifiers' rescaled intensities), or None.
    """

    def __init__(self, config: AugmentConfig, clip: tuple[float, float] | None = None) -> None:
        from monai.transforms import (
            Compose, Rand2DElasticd, RandAdjustContrastd, RandAffined, RandFlipd,
            RandGaussianNoised, RandGaussianSmoothd, RandScaleIntensityd, RandShiftIntensityd,
        )

        both, image = ("image", "label"), ("image",)
        modes = ("bilinear", "nearest")
        angle = math.radians(config.rotation_deg)
        ip = config.intensity_prob
        self.config = config
        self.clip = clip
        self.curve = RandIntensityCurved(image, prob=config.curve_prob, points=config.curve_points)
        self.paint = RandCordLesionPaintd(image, "label", prob=config.paint_prob)
        self.transform = Compose([
            RandAffined(both, prob=config.affine_prob, rotate_range=(angle,),
                        scale_range=(config.scale, config.scale), mode=modes, padding_mode="zeros"),
            Rand2DElasticd(both, spacing=(32, 32), magnitude_range=(1.0, 3.0),
                           prob=config.elastic_prob, mode=modes, padding_mode="zeros"),
            RandFlipd(both, prob=config.flip_prob, spatial_axis=0),
            RandFlipd(both, prob=config.flip_prob, spatial_axis=1),
            self.paint,
            self.curve,
            RandShiftIntensityd(image, offsets=config.brightness, prob=ip),
            RandScaleIntensityd(image, factors=config.contrast, prob=ip),
            RandAdjustContrastd(image, gamma=config.gamma, prob=ip),
            RandGaussianNoised(image, std=config.noise_std, prob=ip),
            RandGaussianSmoothd(image, sigma_x=config.blur_sigma, sigma_y=config.blur_sigma,
                                prob=ip / 2),
        ])

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Augmented float32 copies of ``image`` and ``label`` (label values 0/1 kept)."""
        from monai.data import set_track_meta

        set_track_meta(False)
        self.transform.set_random_state(seed=int(seed) % (2**32))
        self.curve.set_random_state(int(seed) % (2**32) + 2**32)  # its own stream, from the same seed
        self.paint.set_random_state(int(seed) % (2**32) + 2 * 2**32)  # and another
        out = self.transform({"image": np.ascontiguousarray(image, dtype=np.float32),
                              "label": np.ascontiguousarray(label, dtype=np.float32)})
        new_image = np.asarray(out["image"], dtype=np.float32)
        new_label = (np.asarray(out["label"], dtype=np.float32) >= 0.5).astype(np.float32)
        if self.clip is not None:
            np.clip(new_image, self.clip[0], self.clip[1], out=new_image)
        return new_image, new_label
