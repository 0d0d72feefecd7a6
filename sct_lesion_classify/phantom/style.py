"""Styles of the phantom and the ranges their random parameters are drawn from.

Three styles (``STYLES``):

- ``realistic``: the clinical sagittal T2w protocol of ``geometry`` and ``render`` (the default,
  unchanged; it draws nothing from this module).
- ``randomised``: domain randomisation as SynthSeg (Billot et al., MedIA 2023). For every subject,
  :func:`draw_style` draws from :data:`RANDOMISED` the acquisition (voxel size, 2D or isotropic 3D,
  field of view, crop), the posture (tilt in both planes, curvature, scoliosis), the contrast (the
  intensity of every tissue), the acquisition artefacts and the structures outside the cord that
  look like lesions. The lesion classes keep their statistics: this module changes appearance and
  geometry only.
- ``shifted``: a family held out from training on purpose, for evaluation only. Its
  :data:`SHIFTED` ranges equal :data:`HELD_OUT` for three parameters and ``randomised`` never draws
  inside :data:`HELD_OUT` (a uniform draw over the complement), so a model trained on ``randomised``
  never saw a ``shifted`` subject's

  - slice thickness or spacing: 1.7-2.3 mm (``randomised``: 0.8-1.7 or 2.3-4 mm 2D, 0.8-1.2 mm 3D;
    ``realistic``: 3-4.4 mm);
  - global coronal tilt: 8-12 degrees in absolute value (``randomised``: 0-8 or 12-25; the lateral
    curve of scoliosis still bends the cord locally through any angle);
  - CSF/cord intensity ratio on T2w: 0.25-0.5 (``randomised``: any other; ``realistic``: about 2.6).

  Everything else (pixel size 0.5-0.9 mm, sagittal tilt, curvature, artefacts, look-alikes) is
  drawn from the randomised ranges.

Every draw is a frozen dataclass (:class:`StyleParams`); :meth:`StyleRanges.violations` checks a
draw against its ranges (the tests draw thousands). Numpy only: nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

STYLES = ("realistic", "randomised", "shifted")

Interval = tuple[float, float]

#: Tissues whose intensity is drawn (keys of ``anatomy.TISSUE``, plus ``vessel`` for the vessels
#: added by ``lookalikes``). CSF is 1000 on the realistic scale.
TISSUES: tuple[str, ...] = (
    "air", "csf", "cord", "fat", "epidural_fat", "venous_plexus", "muscle", "cortical", "marrow",
    "annulus", "nucleus", "ligament", "brain", "lung", "flow_void", "heart", "joint", "viscera",
    "vessel")
FAT_TISSUES = ("fat", "epidural_fat", "marrow")
NOISE_TYPES = ("rician", "gaussian")


@dataclass(frozen=True)
class HeldOut:
    """Parameter intervals reserved for the ``shifted`` style (closed intervals).

    Attributes
    ----------
    slice_thickness_mm
        Slice thickness and spacing between slices (an intermediate 2D protocol).
    roll_abs_deg
        Absolute tilt of the spine in the coronal plane (``PostureDraw.roll_deg``).
    csf_to_cord
        CSF intensity over cord intensity on the T2w channel (CSF darker than the cord).
    """

    slice_thickness_mm: Interval = (1.7, 2.3)
    roll_abs_deg: Interval = (8.0, 12.0)
    csf_to_cord: Interval = (0.25, 0.5)


HELD_OUT = HeldOut()


@dataclass(frozen=True)
class AcquisitionRanges:
    """Voxel size and field of view. Intervals are ``(low, high)``.

    Attributes
    ----------
    pixel_mm, slice_thickness_mm
        In-plane (A-P and S-I) pixel size and slice thickness of 2D acquisitions.
    isotropic_prob, isotropic_mm
        Probability of an isotropic 3D acquisition, and its voxel size.
    slice_gap
        Spacing between slices over thickness, minus 1 (2D).
    fov_si_mm, fov_ap_fraction, slab_mm
        Field of view: superior-inferior length, anterior-posterior size as a fraction of it,
        right-left coverage of the sagittal slab. Enlarged where the whole lesion would not fit
        (``framing``).
    crop_prob, crop_si_mm, crop_ap_mm, crop_rl_mm
        Probability of a small cropped field of view (as the shared real scan, 131 x 141 x 16 at
        1 mm) and its sizes; a crop may cut the lesion.
    max_voxels
        Voxel budget: larger fields of view are reduced (``framing``).
    """

    pixel_mm: Interval
    slice_thickness_mm: Interval
    isotropic_prob: float
    slice_gap: Interval = (0.0, 0.1)
    isotropic_mm: Interval = (0.8, 1.2)
    fov_si_mm: Interval = (100.0, 400.0)
    fov_ap_fraction: Interval = (0.5, 1.0)
    slab_mm: Interval = (20.0, 140.0)
    crop_prob: float = 0.15
    crop_si_mm: Interval = (16.0, 100.0)
    crop_ap_mm: Interval = (40.0, 160.0)
    crop_rl_mm: Interval = (16.0, 140.0)
    max_voxels: int = 4_000_000


@dataclass(frozen=True)
class PostureRanges:
    """Tilt of the spine in the sagittal plane (head flexion / extension) and, in absolute value, in
    the coronal plane (degrees); sagittal curvature (negative lordosis: a kyphotic neck) and the
    lateral curve (scoliosis), in mm."""

    roll_abs_deg: Interval
    pitch_deg: Interval = (-35.0, 35.0)
    lordosis_mm: Interval = (-12.0, 20.0)
    kyphosis_mm: Interval = (0.0, 45.0)
    lumbar_lordosis_mm: Interval = (0.0, 35.0)
    scoliosis_mm: Interval = (0.0, 20.0)
    scoliosis_wavelength_mm: Interval = (200.0, 600.0)


@dataclass(frozen=True)
class ContrastRanges:
    """Tissue intensities on the realistic scale (CSF = 1000 there).

    Attributes
    ----------
    modes
        ``(mode, probability)`` pairs (see :func:`draw_contrast`).
    tissue, air
        Range of every tissue's T2w intensity, and of air (no signal in any sequence).
    t2_jitter
        Log-normal SD of the ``t2_like`` modes around the realistic values.
    fat_suppression
        Factor on fat, epidural fat and marrow in ``fat_suppressed``.
    low_contrast_csf_to_cord, csf_dark_csf_to_cord
        CSF over cord in ``low_contrast``, and in ``csf_dark`` (the shifted style's contrast).
    lesion_gamma
        Lesion intensity is ``cord * ratio ** gamma`` (``ratio``: the lesion's own T2 ratio to the
        cord, drawn by ``lesions`` as in the realistic style).
    """

    modes: tuple[tuple[str, float], ...]
    tissue: Interval = (0.0, 1000.0)
    air: Interval = (0.0, 60.0)
    t2_jitter: float = 0.25
    fat_suppression: Interval = (0.05, 0.3)
    low_contrast_csf_to_cord: Interval = (0.8, 1.3)
    csf_dark_csf_to_cord: Interval = HELD_OUT.csf_to_cord
    lesion_gamma: Interval = (0.6, 1.4)


@dataclass(frozen=True)
class ArtefactRanges:
    """Acquisition artefacts (applied with MONAI by ``artefacts``).

    Attributes
    ----------
    bias_coeff
        ``RandBiasField`` coefficient range ``(-c, c)``, c drawn here (degree 3).
    noise_types, noise_fraction
        Noise type and its standard deviation as a fraction of the image's 99th percentile.
    blur_sigma_vox
        Gaussian blur per axis, in voxels (across slices up to half of it).
    gibbs_prob, gibbs_alpha
        Probability of Gibbs ringing (``GibbsNoise``) and its alpha.
    spike_prob, spike_amplitude
        Probability of a k-space spike (``RandKSpaceSpikeNoise``), and the amplitude of its stripes
        as a fraction of the mean image intensity.
    gamma
        Contrast gamma (``AdjustContrast``).
    output_p99
        The stored integers' 99th percentile.
    """

    bias_coeff: Interval = (0.0, 0.5)
    noise_types: tuple[str, ...] = NOISE_TYPES
    noise_fraction: Interval = (0.005, 0.08)
    blur_sigma_vox: Interval = (0.0, 1.0)
    gibbs_prob: float = 0.3
    gibbs_alpha: Interval = (0.05, 0.5)
    spike_prob: float = 0.1
    spike_amplitude: Interval = (0.05, 0.3)
    gamma: Interval = (0.7, 1.5)
    output_p99: Interval = (300.0, 3000.0)


@dataclass(frozen=True)
class LookalikeRanges:
    """Structures outside the cord that look like lesions, and degenerative changes.

    Attributes
    ----------
    bright_blobs, vessels, flow_voids
        Counts (inclusive) of lesion-like bright spots outside the cord (fat, haemangioma), vessels
        and CSF flow voids.
    muscle_texture, csf_pulsation
        Amplitude of the muscle texture and of the CSF pulsation (relative intensity variation).
    disc_degeneration
        Probability that a disc's nucleus is degenerated (dark).
    compression_prob, compression_fraction
        Probability of a compressed level (disc bulge), and the A-P cord diameter left there.
    """

    bright_blobs: tuple[int, int] = (0, 6)
    vessels: tuple[int, int] = (0, 4)
    flow_voids: tuple[int, int] = (0, 8)
    muscle_texture: Interval = (0.0, 0.35)
    csf_pulsation: Interval = (0.0, 0.3)
    disc_degeneration: Interval = (0.0, 0.8)
    compression_prob: float = 0.3
    compression_fraction: Interval = (0.45, 0.85)


@dataclass(frozen=True)
class StyleRanges:
    """The stated ranges of one style, by group, and what it never draws.

    ``exclude``: intervals never drawn (:data:`HELD_OUT` for ``randomised``), or None.
    """

    acquisition: AcquisitionRanges
    posture: PostureRanges
    contrast: ContrastRanges
    exclude: HeldOut | None
    artefacts: ArtefactRanges = ArtefactRanges()
    lookalikes: LookalikeRanges = LookalikeRanges()

    def violations(self, params: "StyleParams") -> list[str]:
        """What in ``params`` lies outside these ranges or inside ``exclude`` (empty: all fine)."""
        return _violations(self, params)


RANDOMISED = StyleRanges(
    acquisition=AcquisitionRanges(pixel_mm=(0.3, 1.2), slice_thickness_mm=(0.8, 4.0), isotropic_prob=0.3),
    posture=PostureRanges(roll_abs_deg=(0.0, 25.0)),
    contrast=ContrastRanges(modes=(("independent", 0.5), ("t2_like", 0.25), ("fat_suppressed", 0.15),
                                   ("low_contrast", 0.10))),
    exclude=HELD_OUT)

SHIFTED = StyleRanges(
    acquisition=AcquisitionRanges(pixel_mm=(0.5, 0.9), slice_thickness_mm=HELD_OUT.slice_thickness_mm,
                                  isotropic_prob=0.0, slice_gap=(0.0, 0.0)),
    posture=PostureRanges(roll_abs_deg=HELD_OUT.roll_abs_deg),
    contrast=ContrastRanges(modes=(("csf_dark", 1.0),)),
    exclude=None)

RANGES: Mapping[str, StyleRanges] = {"randomised": RANDOMISED, "shifted": SHIFTED}


# ----------------------------------------------------------------------------------------------
# what is drawn


@dataclass(frozen=True)
class AcquisitionDraw:
    """Voxel size and field of view (mm) of one subject, as drawn (``framing`` realises them)."""

    pixel_mm: float
    slice_thickness_mm: float
    slice_spacing_mm: float
    isotropic: bool
    cropped: bool
    fov_si_mm: float
    fov_ap_mm: float
    slab_mm: float


@dataclass(frozen=True)
class PostureDraw:
    """Tilt (degrees) and curvature (mm) of the spine in the field of view."""

    pitch_deg: float
    roll_deg: float
    lordosis_mm: float
    kyphosis_mm: float
    lumbar_lordosis_mm: float
    scoliosis_mm: float
    scoliosis_wavelength_mm: float
    scoliosis_phase: float


@dataclass(frozen=True)
class ContrastDraw:
    """T2w (and cT1w) intensity of every tissue, and the lesion gamma."""

    mode: str
    t2: tuple[tuple[str, float], ...]
    t1: tuple[tuple[str, float], ...]
    lesion_gamma: float

    def t2_of(self, tissue: str) -> float:
        return dict(self.t2)[tissue]

    def t1_of(self, tissue: str) -> float:
        return dict(self.t1)[tissue]

    @property
    def csf_to_cord(self) -> float:
        return self.t2_of("csf") / max(self.t2_of("cord"), 1e-6)


@dataclass(frozen=True)
class ArtefactDraw:
    """Acquisition artefacts, applied by ``artefacts.apply_artefacts`` (MONAI)."""

    bias_coeff: float
    noise_type: str
    noise_fraction: float
    blur_sigma_vox: tuple[float, float, float]
    gibbs_alpha: float          # 0: no ringing
    spike_amplitude: float      # 0: no spike
    gamma: float
    output_p99: float
    seed: int                   # seeds the MONAI transforms (set_random_state)


@dataclass(frozen=True)
class LookalikeDraw:
    """Structures outside the cord that look like lesions, and degenerative changes."""

    bright_blobs: int
    vessels: int
    flow_voids: int
    muscle_texture: float
    csf_pulsation: float
    disc_degeneration: float
    compression_fraction: float | None   # None: no compressed level


@dataclass(frozen=True)
class StyleParams:
    """Everything drawn for one subject of a random style."""

    style: str
    acquisition: AcquisitionDraw
    posture: PostureDraw
    contrast: ContrastDraw
    artefacts: ArtefactDraw
    lookalikes: LookalikeDraw


# ----------------------------------------------------------------------------------------------
# drawing


def uniform_outside(rng: np.random.Generator, interval: Interval, hole: Interval | None) -> float:
    """Uniform draw on ``interval`` minus the closed ``hole`` (one draw, no rejection)."""
    lo, hi = interval
    if hole is None or hole[1] <= lo or hole[0] >= hi:
        return float(rng.uniform(lo, hi))
    left = max(hole[0] - lo, 0.0)
    right = max(hi - hole[1], 0.0)
    if left + right <= 0:
        raise ValueError(f"{interval} lies inside the excluded {hole}")
    u = float(rng.uniform(0.0, left + right))
    value = lo + u if u < left else hole[1] + (u - left)
    if hole[0] <= value <= hole[1]:  # the closed hole's edges (probability 0, kept exact)
        value = np.nextafter(hole[1], np.inf) if value >= hole[1] else np.nextafter(hole[0], -np.inf)
    return float(value)


def draw_style(rng: np.random.Generator, style: str,
               ranges: StyleRanges | None = None) -> StyleParams:
    """Draw the parameters of one subject of ``style`` (``randomised`` or ``shifted``).

    Raises
    ------
    ValueError
        ``realistic`` or an unknown style.
    """
    if style not in RANGES:
        raise ValueError(f"no random parameters for style {style!r}; choose from {', '.join(RANGES)}")
    ranges = RANGES[style] if ranges is None else ranges
    return StyleParams(style, draw_acquisition(rng, ranges), draw_posture(rng, ranges),
                       draw_contrast(rng, ranges), draw_artefacts(rng, ranges),
                       draw_lookalikes(rng, ranges))


def draw_acquisition(rng: np.random.Generator, ranges: StyleRanges) -> AcquisitionDraw:
    acq = ranges.acquisition
    hole = ranges.exclude.slice_thickness_mm if ranges.exclude else None
    isotropic = bool(rng.random() < acq.isotropic_prob)
    if isotropic:
        pixel = float(rng.uniform(*acq.isotropic_mm))
        thickness = spacing = pixel
    else:
        pixel = float(rng.uniform(*acq.pixel_mm))
        stretch = 1.0 + float(rng.uniform(*acq.slice_gap))
        # neither the thickness nor the spacing (thickness * stretch) in the hole
        thickness = uniform_outside(rng, acq.slice_thickness_mm,
                                    None if hole is None else (hole[0] / stretch, hole[1]))
        spacing = thickness * stretch
    cropped = bool(rng.random() < acq.crop_prob)
    if cropped:
        fov_si = float(rng.uniform(*acq.crop_si_mm))
        fov_ap = float(rng.uniform(*acq.crop_ap_mm))
        slab = float(rng.uniform(*acq.crop_rl_mm))
    else:
        fov_si = float(rng.uniform(*acq.fov_si_mm))
        fov_ap = fov_si * float(rng.uniform(*acq.fov_ap_fraction))
        slab = float(rng.uniform(*acq.slab_mm))
    return AcquisitionDraw(pixel, thickness, spacing, isotropic, cropped, fov_si, fov_ap, slab)


def draw_posture(rng: np.random.Generator, ranges: StyleRanges) -> PostureDraw:
    pose = ranges.posture
    hole = ranges.exclude.roll_abs_deg if ranges.exclude else None
    roll = uniform_outside(rng, pose.roll_abs_deg, hole) * (1.0 if rng.random() < 0.5 else -1.0)
    return PostureDraw(
        pitch_deg=float(rng.uniform(*pose.pitch_deg)), roll_deg=roll,
        lordosis_mm=float(rng.uniform(*pose.lordosis_mm)),
        kyphosis_mm=float(rng.uniform(*pose.kyphosis_mm)),
        lumbar_lordosis_mm=float(rng.uniform(*pose.lumbar_lordosis_mm)),
        scoliosis_mm=float(rng.uniform(*pose.scoliosis_mm)),
        scoliosis_wavelength_mm=float(rng.uniform(*pose.scoliosis_wavelength_mm)),
        scoliosis_phase=float(rng.uniform(0.0, 2 * np.pi)))


def draw_contrast(rng: np.random.Generator, ranges: StyleRanges) -> ContrastDraw:
    """Tissue intensities for one subject.

    Modes: ``independent`` (every tissue uniform in ``tissue``, as SynthSeg: fat, muscle or CSF may
    be brighter than the cord, or darker), ``t2_like`` (the realistic T2w values with log-normal
    jitter), ``fat_suppressed`` (t2_like with fat, epidural fat and marrow dimmed),
    ``low_contrast`` (t2_like with CSF close to the cord), ``csf_dark`` (t2_like with CSF darker
    than the cord: the shifted family). The CSF/cord ratio never falls in ``exclude.csf_to_cord``
    (CSF is drawn again).
    """
    from sct_lesion_classify.phantom.anatomy import reference

    con = ranges.contrast
    names, weights = zip(*con.modes)
    mode = str(names[int(rng.choice(len(names), p=np.asarray(weights) / np.sum(weights)))])
    lo, hi = con.tissue

    def bounded(tissue: str, value: float) -> float:
        low, high = con.air if tissue == "air" else con.tissue
        return float(np.clip(value, low, high))

    def jittered(channel: int) -> dict[str, float]:
        return {t: bounded(t, reference(t)[channel] * float(np.exp(rng.normal(0.0, con.t2_jitter))))
                for t in TISSUES}

    if mode == "independent":
        t2 = {t: float(rng.uniform(*(con.air if t == "air" else con.tissue))) for t in TISSUES}
    else:
        t2 = jittered(0)
        if mode == "fat_suppressed":
            for t in FAT_TISSUES:
                t2[t] = bounded(t, t2[t] * float(rng.uniform(*con.fat_suppression)))
        elif mode == "low_contrast":
            t2["csf"] = bounded("csf", t2["cord"] * float(rng.uniform(*con.low_contrast_csf_to_cord)))
        elif mode == "csf_dark":
            t2["cord"] = float(rng.uniform(0.3 * hi, hi))
            t2["csf"] = bounded("csf", t2["cord"] * float(rng.uniform(*con.csf_dark_csf_to_cord)))
    t2["cord"] = max(t2["cord"], 0.02 * (hi - lo))   # a cord with some signal: lesions are ratios of it
    if ranges.exclude is not None:
        hole = ranges.exclude.csf_to_cord
        if hole[0] <= t2["csf"] / t2["cord"] <= hole[1]:
            t2["csf"] = uniform_outside(rng, con.tissue, (t2["cord"] * hole[0], t2["cord"] * hole[1]))
    t1 = jittered(1)
    return ContrastDraw(mode, tuple(t2.items()), tuple(t1.items()),
                        float(rng.uniform(*con.lesion_gamma)))


def draw_artefacts(rng: np.random.Generator, ranges: StyleRanges) -> ArtefactDraw:
    art = ranges.artefacts
    sigma_lo, sigma_hi = art.blur_sigma_vox
    return ArtefactDraw(
        bias_coeff=float(rng.uniform(*art.bias_coeff)),
        noise_type=str(art.noise_types[int(rng.integers(len(art.noise_types)))]),
        noise_fraction=float(rng.uniform(*art.noise_fraction)),
        blur_sigma_vox=(float(rng.uniform(sigma_lo, (sigma_lo + sigma_hi) / 2)),  # across slices
                        float(rng.uniform(sigma_lo, sigma_hi)), float(rng.uniform(sigma_lo, sigma_hi))),
        gibbs_alpha=float(rng.uniform(*art.gibbs_alpha)) if rng.random() < art.gibbs_prob else 0.0,
        spike_amplitude=float(rng.uniform(*art.spike_amplitude)) if rng.random() < art.spike_prob else 0.0,
        gamma=float(rng.uniform(*art.gamma)),
        output_p99=float(rng.uniform(*art.output_p99)),
        seed=int(rng.integers(2**31 - 1)))


def draw_lookalikes(rng: np.random.Generator, ranges: StyleRanges) -> LookalikeDraw:
    look = ranges.lookalikes

    def count(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))

    compressed = rng.random() < look.compression_prob
    fraction = float(rng.uniform(*look.compression_fraction))
    return LookalikeDraw(
        bright_blobs=count(look.bright_blobs), vessels=count(look.vessels),
        flow_voids=count(look.flow_voids),
        muscle_texture=float(rng.uniform(*look.muscle_texture)),
        csf_pulsation=float(rng.uniform(*look.csf_pulsation)),
        disc_degeneration=float(rng.uniform(*look.disc_degeneration)),
        compression_fraction=fraction if compressed else None)


# ----------------------------------------------------------------------------------------------
# checking


def _inside(value: float, interval: Interval, tol: float = 1e-9) -> bool:
    return interval[0] - tol <= value <= interval[1] + tol


def _violations(ranges: StyleRanges, params: StyleParams) -> list[str]:
    out: list[str] = []

    def need(value: float, interval: Interval, what: str) -> None:
        if not _inside(value, interval):
            out.append(f"{what} {value} outside {interval}")

    acq, pose, con = params.acquisition, params.posture, params.contrast
    art, look = params.artefacts, params.lookalikes
    r_acq, r_pose, r_con, r_art, r_look = (ranges.acquisition, ranges.posture, ranges.contrast,
                                           ranges.artefacts, ranges.lookalikes)
    if acq.isotropic:
        need(acq.pixel_mm, r_acq.isotropic_mm, "isotropic voxel")
        if not acq.pixel_mm == acq.slice_thickness_mm == acq.slice_spacing_mm:
            out.append("isotropic voxel not cubic")
    else:
        need(acq.pixel_mm, r_acq.pixel_mm, "pixel")
        need(acq.slice_thickness_mm, r_acq.slice_thickness_mm, "slice thickness")
        need(acq.slice_spacing_mm / acq.slice_thickness_mm - 1.0, r_acq.slice_gap, "slice gap")
    if acq.cropped:
        need(acq.fov_si_mm, r_acq.crop_si_mm, "cropped S-I field of view")
        need(acq.fov_ap_mm, r_acq.crop_ap_mm, "cropped A-P field of view")
        need(acq.slab_mm, r_acq.crop_rl_mm, "cropped slab")
    else:
        need(acq.fov_si_mm, r_acq.fov_si_mm, "S-I field of view")
        need(acq.fov_ap_mm / acq.fov_si_mm, r_acq.fov_ap_fraction, "A-P / S-I field of view")
        need(acq.slab_mm, r_acq.slab_mm, "slab")
    need(pose.pitch_deg, r_pose.pitch_deg, "pitch")
    need(abs(pose.roll_deg), r_pose.roll_abs_deg, "roll")
    for name in ("lordosis_mm", "kyphosis_mm", "lumbar_lordosis_mm", "scoliosis_mm",
                 "scoliosis_wavelength_mm"):
        need(getattr(pose, name), getattr(r_pose, name), name)
    if con.mode not in dict(r_con.modes):
        out.append(f"contrast mode {con.mode}")
    for tissue, value in con.t2:
        need(value, r_con.air if tissue == "air" else r_con.tissue, f"T2w {tissue}")
    need(con.lesion_gamma, r_con.lesion_gamma, "lesion gamma")
    if con.mode == "csf_dark":
        need(con.csf_to_cord, r_con.csf_dark_csf_to_cord, "CSF/cord")
    need(art.bias_coeff, r_art.bias_coeff, "bias")
    if art.noise_type not in r_art.noise_types:
        out.append(f"noise type {art.noise_type}")
    need(art.noise_fraction, r_art.noise_fraction, "noise level")
    for sigma in art.blur_sigma_vox:
        need(sigma, r_art.blur_sigma_vox, "blur")
    if art.gibbs_alpha:
        need(art.gibbs_alpha, r_art.gibbs_alpha, "Gibbs alpha")
    if art.spike_amplitude:
        need(art.spike_amplitude, r_art.spike_amplitude, "spike")
    need(art.gamma, r_art.gamma, "gamma")
    need(art.output_p99, r_art.output_p99, "output level")
    for name in ("bright_blobs", "vessels", "flow_voids", "muscle_texture", "csf_pulsation",
                 "disc_degeneration"):
        need(getattr(look, name), getattr(r_look, name), name)
    if look.compression_fraction is not None:
        need(look.compression_fraction, r_look.compression_fraction, "compression")
    if ranges.exclude is not None:
        out.extend(held_out_hits(params, ranges.exclude))
    return out


def held_out_hits(params: StyleParams, held_out: HeldOut = HELD_OUT) -> list[str]:
    """The parameters of ``params`` that fall inside ``held_out`` (empty: none)."""
    hits = []
    for name in ("slice_thickness_mm", "slice_spacing_mm"):
        value = getattr(params.acquisition, name)
        if _inside(value, held_out.slice_thickness_mm, 0.0):
            hits.append(f"{name} {value} is held out")
    if _inside(abs(params.posture.roll_deg), held_out.roll_abs_deg, 0.0):
        hits.append(f"roll {params.posture.roll_deg} is held out")
    if _inside(params.contrast.csf_to_cord, held_out.csf_to_cord, 0.0):
        hits.append(f"CSF/cord {params.contrast.csf_to_cord} is held out")
    return hits

