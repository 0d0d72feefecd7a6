"""Acquisition artefacts of the random styles, applied with MONAI's MRI transforms.

Library: MONAI, which the project already installs for training (the ``train`` extra):

- ``RandBiasField``: receive-coil sensitivity, exp of a degree-3 polynomial (evaluated on a coarse
  grid and interpolated: it is smooth, and the full grid costs seconds);
- ``GaussianSmooth``: the point-spread function, a blur per axis;
- ``GibbsNoise``: truncation ringing;
- ``RandKSpaceSpikeNoise``: a spike, herringbone stripes (its amplitude is drawn here: MONAI's
  default comes from the mean log k-space magnitude, which means nothing for piecewise-constant
  images);
- ``RandRicianNoise`` / ``RandGaussianNoise``; ``AdjustContrast`` (gamma).

Their strengths are drawn by ``style.draw_artefacts`` (so the tests can check them against the
stated ranges); what a transform draws itself (bias coefficients, noise, spike position) comes from
``ArtefactDraw.seed`` through ``set_random_state``, so a subject is deterministic.

TorchIO's motion and ghosting transforms are the ones MONAI lacks. TorchIO is not installed and is not
worth a new dependency for them: CSF pulsation is rendered as flow voids and an intensity pattern
(``lookalikes``, ``appearance``) instead. Resolution, tilt and curvature are not resampled after the
fact: the phantom is rendered on the drawn grid with exact partial volume (``framing``), so the masks
stay exact; MONAI's affine serves ``augment``, which has only an image and its masks.

MONAI imports torch, which SCT's inference environment lacks: it is imported inside the functions,
and :func:`require_monai` turns its absence into a one-line ``InputError`` (exit 2 from a command).
"""

from __future__ import annotations

import numpy as np

from sct_lesion_classify.errors import require_training_extras
from sct_lesion_classify.phantom.style import ArtefactDraw

#: Largest stored integer (int16 NIfTI).
MAX_STORED = 32767
#: Points per axis of the grid the bias field is evaluated on before interpolation.
COARSE_BIAS = 48


def require_monai(style: str) -> None:
    """Raise ``InputError`` (one line) when MONAI or PyTorch cannot be imported
    (:func:`~sct_lesion_classify.errors.require_training_extras`)."""
    require_training_extras(f"style {style!r}", "; the realistic style does not")


def apply_artefacts(image: np.ndarray, draw: ArtefactDraw, *, seed_offset: int = 0) -> np.ndarray:
    """Artefacts of ``draw`` on a noise-free 3D ``image``; float32, integer-valued, in [0, 32767].

    Order, as in a scanner: bias field, blur, Gibbs ringing, spike, noise on the magnitude, gamma,
    then a scale that puts the 99th percentile at ``draw.output_p99``. ``seed_offset`` gives a second
    channel (cT1w) its own noise.
    """
    from monai.data import set_track_meta
    from monai.transforms import (
        AdjustContrast, GaussianSmooth, GibbsNoise, RandBiasField, RandGaussianNoise,
        RandKSpaceSpikeNoise, RandRicianNoise,
    )

    set_track_meta(False)
    seeds = np.random.SeedSequence([draw.seed, seed_offset]).generate_state(3)
    volume = np.array(image, dtype=np.float32)[None]  # a copy (the input is kept); channel first
    if draw.bias_coeff > 0:
        bias = RandBiasField(degree=3, coeff_range=(-draw.bias_coeff, draw.bias_coeff), prob=1.0)
        bias.set_random_state(seed=int(seeds[0]))
        volume *= _smooth_field(bias, volume.shape[1:])[None]
    if max(draw.blur_sigma_vox) > 0:
        volume = to_numpy(GaussianSmooth(sigma=draw.blur_sigma_vox)(volume))
    if draw.gibbs_alpha > 0:
        volume = to_numpy(GibbsNoise(alpha=draw.gibbs_alpha)(volume))
    if draw.spike_amplitude > 0:
        # stripes of amplitude A / N for a k-space point of magnitude A (unnormalised FFT, N voxels)
        log_intensity = float(np.log(max(float(volume.sum()), 1e-3) * draw.spike_amplitude))
        spike = RandKSpaceSpikeNoise(prob=1.0, intensity_range=(log_intensity, log_intensity))
        spike.set_random_state(seed=int(seeds[1]))
        volume = to_numpy(spike(volume))
    level = max(float(np.percentile(volume, 99)), 1e-3)
    sigma = draw.noise_fraction * level
    noise = (RandRicianNoise(prob=1.0, std=sigma, sample_std=False) if draw.noise_type == "rician"
             else RandGaussianNoise(prob=1.0, std=sigma, sample_std=False))
    noise.set_random_state(seed=int(seeds[2]))
    volume = np.maximum(to_numpy(noise(volume)), 0.0)
    volume = to_numpy(AdjustContrast(gamma=draw.gamma)(volume))[0]
    volume *= np.float32(draw.output_p99 / max(float(np.percentile(volume, 99)), 1e-3))
    return np.clip(np.rint(volume), 0, MAX_STORED).astype(np.float32)


def _smooth_field(bias, shape: tuple[int, ...]) -> np.ndarray:
    """MONAI's bias field on a coarse grid (it is a degree-3 polynomial), interpolated to ``shape``.

    The coarse and the fine grid span the same [-1, 1] box (MONAI's coordinates), corner to corner.
    """
    from scipy.ndimage import zoom

    coarse = tuple(min(n, COARSE_BIAS) for n in shape)
    field = to_numpy(bias(np.ones((1, *coarse), dtype=np.float32)))[0]
    return zoom(field, [n / c for n, c in zip(shape, coarse)], order=1, grid_mode=False).astype(np.float32)


def to_numpy(value) -> np.ndarray:
    """A MONAI result (numpy array or torch tensor) as float32 numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)
