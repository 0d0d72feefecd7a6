"""A training augmentation of the cord localizer: synthetic lesions painted inside the cord label.

An intramedullary lesion is part of the cord. A localizer that has seen the phantoms' lesions,
drawn by one generator, may stop counting as cord a lesion drawn another way: two fine-tunings of
the bundled localizer (2.5D, random intensity curves; ``models/README.md``) left a hole in the cord
at the lesions painted into the real scan. :class:`RandCordLesionPaintd` paints, with probability
``prob``, one to three blobs of random size, signal and texture inside the cord label of a 2D
training sample, elongated along the cord; the label is unchanged, so the network learns that such
a blob is still cord.

Each blob is an ellipse centred on a random cord pixel, its long axis along the cord's local
direction (the principal axis of the cord pixels within :data:`_DIRECTION_RADIUS_PX`), with a soft
edge, cut to the label. Its signal is set from the slice's own cord: ``dark + ratio * (cord -
dark)``, where ``cord`` is the median of the channel over the label and ``dark`` its 1st percentile
(z-scored inputs have no zero signal level), ``ratio`` is hyperintense (T2 oedema, tumour, cyst)
or, for :data:`HYPO_SHARE` of the blobs, hypointense (a haemosiderin cap). A smooth texture
modulates it, and each painted pixel gets back the noise its value lost (the level measured in the
cord, :func:`cord_noise_sigma`), as ``insertion.paint`` does in 3D.
"""

from __future__ import annotations

import numpy as np

#: Share of the painted blobs that are hypointense.
HYPO_SHARE = 0.15
#: Radius (pixels) of the cord neighbourhood whose principal axis gives the blob's direction.
_DIRECTION_RADIUS_PX = 12.0
#: Width of the blob's soft edge, as a fraction of its normalised radius.
_EDGE = 0.3
#: Fewest cord pixels a sample needs to be painted.
MIN_CORD_PIXELS = 20
#: Standard deviation that unit white noise keeps after subtracting its 1-pixel Gaussian smoothing.
_HIGH_PASS_WHITE_NOISE = float(np.sqrt(1.0 - 3.0 / (4.0 * np.pi)))


class RandCordLesionPaintd:
    """Paint synthetic lesions inside the cord label of a 2D sample (module docstring).

    Parameters
    ----------
    image_keys
        The image entries, ``(C, H, W)``; every channel gets the same blobs, each at its own
        cord level.
    label_key
        The cord label entry, ``(1, H, W)``; left unchanged.
    prob
        Probability that a sample is painted.
    count, half_length_px, half_width_px, hyper_ratio, hypo_ratio, texture
        Ranges of the draws: blobs per sample, the ellipse's half axes along and across the cord
        (pixels of the model grid: 1 mm for the bundled localizer), the signal ratio above and
        below the cord, and the relative amplitude of the texture.

    A dictionary transform of MONAI's calling convention; :class:`~.augment.Augmenter` seeds it
    for every sample (:meth:`set_random_state`).
    """

    def __init__(self, image_keys: tuple[str, ...], label_key: str, prob: float, *,
                 count: tuple[int, int] = (1, 3), half_length_px: tuple[float, float] = (2.5, 30.0),
                 half_width_px: tuple[float, float] = (1.5, 6.0),
                 hyper_ratio: tuple[float, float] = (1.2, 2.6), hypo_ratio: tuple[float, float] = (0.4, 0.85),
                 texture: tuple[float, float] = (0.0, 0.15)) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.image_keys, self.label_key, self.prob = tuple(image_keys), label_key, float(prob)
        self.count, self.half_length_px, self.half_width_px = count, half_length_px, half_width_px
        self.hyper_ratio, self.hypo_ratio, self.texture = hyper_ratio, hypo_ratio, texture
        self._rng = np.random.default_rng(0)

    def set_random_state(self, seed: int) -> "RandCordLesionPaintd":
        """Draw the next sample's lesions from ``seed``."""
        self._rng = np.random.default_rng(int(seed))
        return self

    def __call__(self, data: dict) -> dict:
        if self.prob <= 0.0 or self._rng.random() >= self.prob:
            return data
        cord = np.asarray(data[self.label_key])[0] >= 0.5
        if np.count_nonzero(cord) < MIN_CORD_PIXELS:
            return data
        blobs = [self._draw_blob(cord) for _ in range(int(self._rng.integers(self.count[0], self.count[1] + 1)))]
        out = dict(data)
        for key in self.image_keys:
            out[key] = np.stack([self._paint(channel, cord, blobs) for channel in np.asarray(data[key], np.float32)])
        return out

    def _draw_blob(self, cord: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
        """(weight in [0, 1] inside the cord, signal ratio, texture amplitude, texture field)."""
        from scipy import ndimage

        rng = self._rng
        rows, cols = np.nonzero(cord)
        pick = int(rng.integers(rows.size))
        centre = np.array([rows[pick], cols[pick]], dtype=np.float64)
        along = cord_direction(cord, centre)
        across = np.array([-along[1], along[0]])
        a = rng.uniform(*self.half_length_px)
        b = min(rng.uniform(*self.half_width_px), a)
        grid = np.stack(np.meshgrid(np.arange(cord.shape[0]), np.arange(cord.shape[1]), indexing="ij"), -1) - centre
        radius = np.hypot(grid @ along / a, grid @ across / b)
        weight = np.clip((1.0 - radius) / _EDGE, 0.0, 1.0) * cord
        hypo = rng.random() < HYPO_SHARE
        ratio = rng.uniform(*(self.hypo_ratio if hypo else self.hyper_ratio))
        amplitude = rng.uniform(*self.texture)
        field = ndimage.gaussian_filter(rng.standard_normal(cord.shape), 2.0)
        field /= max(float(field.std()), 1e-6)
        return weight.astype(np.float32), float(ratio), float(amplitude), field.astype(np.float32)

    def _paint(self, channel: np.ndarray, cord: np.ndarray,
               blobs: list[tuple[np.ndarray, float, float, np.ndarray]]) -> np.ndarray:
        cord_level = float(np.median(channel[cord]))
        dark = float(np.percentile(channel, 1.0))
        if not cord_level > dark:  # a cord no brighter than the darkest tissue: no level to scale
            return channel
        sigma = cord_noise_sigma(channel, cord)
        painted = channel.copy()
        kept = np.ones(channel.shape, dtype=np.float32)   # weight of the original value (and noise)
        for weight, ratio, amplitude, field in blobs:
            target = (dark + ratio * (cord_level - dark)) * (1.0 + amplitude * field)
            painted += weight * (target - painted)
            kept *= 1.0 - weight
        noise = self._rng.standard_normal(channel.shape).astype(np.float32)
        return (painted + sigma * np.sqrt(1.0 - kept ** 2) * noise).astype(np.float32)


def cord_direction(cord: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Unit vector of the cord's local long axis at ``centre`` (rows, cols): the principal axis
    of the cord pixels within :data:`_DIRECTION_RADIUS_PX`; the second image axis when too few."""
    rows, cols = np.nonzero(cord)
    offsets = np.stack([rows, cols], -1) - centre
    near = offsets[np.hypot(offsets[:, 0], offsets[:, 1]) <= _DIRECTION_RADIUS_PX]
    if len(near) < 5:
        return np.array([0.0, 1.0])
    _, vectors = np.linalg.eigh(np.cov(near.T))
    return vectors[:, -1] / np.linalg.norm(vectors[:, -1])


def cord_noise_sigma(channel: np.ndarray, cord: np.ndarray) -> float:
    """Noise level inside the cord: the robust spread (1.4826 MAD) of the channel minus its
    Gaussian smoothing (1 pixel), over the cord eroded by 2 pixels (away from the edges the
    smoothing blurs), or over the whole cord when the erosion leaves fewer than
    :data:`MIN_CORD_PIXELS`. White noise of standard deviation s leaves s * sqrt(1 - 3 / (4 pi))
    after that high-pass (the kernel's centre weight is 1 / (2 pi), its sum of squares
    1 / (4 pi)); the spread is divided by that factor."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(cord, iterations=2)
    region = inner if np.count_nonzero(inner) >= MIN_CORD_PIXELS else cord
    detail = channel - ndimage.gaussian_filter(channel, 1.0)
    values = detail[region]
    return float(1.4826 * np.median(np.abs(values - np.median(values))) / _HIGH_PASS_WHITE_NOISE)
