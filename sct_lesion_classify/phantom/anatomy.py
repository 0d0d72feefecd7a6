"""Synthetic spine anatomy of a sagittal T2w field of view.

The anatomical frame: x to the subject's right, y anterior, z superior (mm); z = 0 is the top of
C1. The vertebral column is a sequence of segments (C1 ... S1), each a vertebral body above its
disc, with heights that grow from cervical to lumbar levels. A continuous *level coordinate*
``level`` counts segments from the top of C1 (``level`` in [k, k+1) is segment k; C1 = 0, T1 = 7,
L1 = 19). The cord follows a centreline with physiological curvature (cervical lordosis, thoracic
kyphosis, lumbar lordosis) and a small lateral drift; its cross-section is an ellipse with the
cervical and lumbar enlargements, tapering into the conus medullaris at L1-L2.

Around it: the CSF sleeve (thecal sac), epidural fat / venous plexus, vertebral bodies (marrow in a
dark cortical shell, endplates perpendicular to the spine), discs (dark annulus, nucleus bright
unless degenerated; degeneration becomes likelier with age), posterior elements (laminae,
spinous processes sloping as they do at each level, ligamentum flavum), articular pillars with
facet joints in the lateral slices, paraspinal muscles, subcutaneous fat and the body contour with
air outside; the posterior fossa (cerebellum, occipital bone) above C1; the airway in the neck;
lungs, heart and the descending aorta (flow voids) in front of the thoracic spine.

Every structure is returned as a :class:`~sct_lesion_classify.phantom.raster.Layer` (its
right-left interval per in-plane pixel), so that partial volume across the thick sagittal slices is
exact when the layers are rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from sct_lesion_classify.phantom.geometry import AcquisitionGeometry
from sct_lesion_classify.phantom.raster import Layer, make_layer, superellipse_half

SEGMENT_NAMES: tuple[str, ...] = tuple(
    [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)]
    + [f"L{i}" for i in range(1, 6)] + ["S1"])
LEVEL_T1 = 7.0
LEVEL_L1 = 19.0

_BASE_HEIGHT_MM = np.array([10.0, 20.0] + [17.5] * 5 + list(np.linspace(20.0, 29.0, 12))
                           + [35.0, 36.0, 37.0, 37.0, 37.0] + [40.0])
_DISC_FRACTION = np.array([0.0, 0.18] + [0.26] * 5 + [0.2] * 12 + [0.27] * 5 + [0.0])

#: T2w and cT1w intensities of the tissues (arbitrary units; CSF = 1000 on T2w).
TISSUE: dict[str, tuple[float, float]] = {
    "air": (0.0, 0.0), "csf": (1000.0, 160.0), "cord": (380.0, 520.0), "fat": (720.0, 900.0),
    "epidural_fat": (640.0, 820.0), "venous_plexus": (430.0, 700.0), "muscle": (230.0, 420.0),
    "cortical": (70.0, 60.0), "marrow": (380.0, 640.0), "annulus": (170.0, 300.0),
    "nucleus": (780.0, 340.0), "ligament": (110.0, 150.0), "brain": (470.0, 520.0),
    "lung": (25.0, 20.0), "flow_void": (40.0, 60.0), "heart": (230.0, 420.0),
    "joint": (430.0, 250.0), "viscera": (300.0, 480.0),
}
#: Reference (T2w, cT1w) value of tissues that only the random styles paint (``lookalikes``).
EXTRA_REFERENCE: dict[str, tuple[float, float]] = {"vessel": (450.0, 450.0)}


def reference(tissue: str) -> tuple[float, float]:
    """Realistic (T2w, cT1w) value of a tissue: :data:`TISSUE`, else :data:`EXTRA_REFERENCE`.

    Raises
    ------
    KeyError
        A tissue in neither table.
    """
    return TISSUE.get(tissue) or EXTRA_REFERENCE[tissue]


def disc_level(segment: int) -> float:
    """Level coordinate of the middle of the disc at the bottom of ``segment`` (1 ... 23 have one)."""
    return float(segment + 1.0 - _DISC_FRACTION[segment] / 2)


@dataclass(frozen=True)
class Spine:
    """Superior-inferior position of the vertebral segments.

    Attributes
    ----------
    boundaries_z
        z (mm) of the top of each segment, then of the bottom of the last one (26 values,
        decreasing; the first is 0, the top of C1).
    """

    boundaries_z: tuple[float, ...]

    def z_of_level(self, level: np.ndarray | float) -> np.ndarray:
        """z of a level coordinate (linear extrapolation above C1, 10 mm per level)."""
        level = np.asarray(level, dtype=np.float64)
        bounds = np.asarray(self.boundaries_z)
        z = np.interp(level, np.arange(bounds.size), bounds)
        return np.where(level < 0, -10.0 * level, z)

    def level_of_z(self, z: np.ndarray | float) -> np.ndarray:
        """Level coordinate of z (inverse of :meth:`z_of_level`)."""
        z = np.asarray(z, dtype=np.float64)
        bounds = np.asarray(self.boundaries_z)
        level = np.interp(-z, -bounds, np.arange(bounds.size))
        return np.where(z > 0, -z / 10.0, level)

    @staticmethod
    def segment_name(level: float) -> str:
        """Name of the segment at a level coordinate (clamped to C1 ... S1)."""
        return SEGMENT_NAMES[int(np.clip(np.floor(level), 0, len(SEGMENT_NAMES) - 1))]


@dataclass(frozen=True)
class AnatomyParams:
    """Subject-specific anatomy (sampled by :func:`sample_anatomy`).

    ``pitch_deg`` and ``roll_deg`` tilt the whole spine in the sagittal and coronal planes about
    the axial plane ``z = tilt_origin_z_mm`` (the randomised styles; 0 in the realistic one). A
    tilt is a shear of the anatomical frame (every structure follows the cord centre of its row),
    which keeps volumes and the level of every point, so lesion statistics are unchanged; the
    segment heights of a pitched spine are scaled by cos(pitch) (``framing``) so that lengths along
    the spine stay real. The cord's axial section widens by 1/cos of its local slope as before.
    """

    spine: Spine
    conus_level: float
    cord_scale: float
    lordosis_mm: float
    kyphosis_mm: float
    lumbar_lordosis_mm: float
    lateral_amplitude_mm: float
    lateral_wavelength_mm: float
    lateral_phase: float
    subcutaneous_fat_mm: float
    disc_nucleus: tuple[float, ...]
    marrow: tuple[float, ...]
    csf_margin_mm: float
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    tilt_origin_z_mm: float = 0.0


def sample_anatomy(rng: np.random.Generator, age: float, sex: str) -> AnatomyParams:
    """Sample a subject's anatomy; size depends on sex, disc degeneration and marrow fat on age."""
    scale = float(rng.normal(1.0 if sex == "M" else 0.95, 0.035))
    heights = _BASE_HEIGHT_MM * scale * rng.normal(1.0, 0.03, _BASE_HEIGHT_MM.size)
    bounds = np.concatenate([[0.0], -np.cumsum(heights)])
    degeneration_p = float(np.clip((age - 20.0) / 70.0, 0.02, 0.8))
    nucleus = np.where(rng.random(len(SEGMENT_NAMES)) < degeneration_p,
                       rng.uniform(0.25, 0.6, len(SEGMENT_NAMES)),
                       rng.uniform(0.85, 1.1, len(SEGMENT_NAMES)))
    marrow = rng.normal(1.0 + 0.004 * (age - 40.0), 0.06, len(SEGMENT_NAMES))
    return AnatomyParams(
        spine=Spine(tuple(float(b) for b in bounds)),
        conus_level=float(rng.uniform(19.5, 21.0)),
        cord_scale=float(rng.normal(1.0, 0.06)),
        lordosis_mm=float(rng.uniform(-3.0, 12.0)),
        kyphosis_mm=float(rng.uniform(8.0, 28.0)),
        lumbar_lordosis_mm=float(rng.uniform(8.0, 22.0)),
        lateral_amplitude_mm=float(rng.uniform(0.0, 2.5)),
        lateral_wavelength_mm=float(rng.uniform(250.0, 600.0)),
        lateral_phase=float(rng.uniform(0.0, 2 * np.pi)),
        subcutaneous_fat_mm=float(rng.uniform(4.0, 22.0)),
        disc_nucleus=tuple(float(v) for v in nucleus),
        marrow=tuple(float(v) for v in marrow),
        csf_margin_mm=float(rng.uniform(2.3, 3.6)),
    )


_CURVE_LEVELS = np.array([-4.0, 0.0, 4.0, 7.5, 13.0, 19.0, 22.5, 26.0])


class Anatomy:
    """The anatomy of one subject placed in one field of view: functions of z (and y)."""

    def __init__(self, params: AnatomyParams, y_shift_mm: float = 0.0, x_shift_mm: float = 0.0):
        self.params = params
        self.spine = params.spine
        p = params
        curve = np.array([0.0, 0.0, p.lordosis_mm, 0.0, -p.kyphosis_mm, -0.2 * p.kyphosis_mm,
                          p.lumbar_lordosis_mm, 0.0])
        self._curve = PchipInterpolator(_CURVE_LEVELS, curve, extrapolate=True)
        self.y_shift_mm = y_shift_mm
        self.x_shift_mm = x_shift_mm

    def with_shift(self, y_shift_mm: float, x_shift_mm: float) -> "Anatomy":
        return Anatomy(self.params, y_shift_mm, x_shift_mm)

    # centreline ---------------------------------------------------------------------------
    def level(self, z: np.ndarray) -> np.ndarray:
        return self.spine.level_of_z(z)

    def center_y(self, z: np.ndarray) -> np.ndarray:
        """Anterior-posterior position of the cord centre (mm)."""
        center = self._curve(np.clip(self.level(z), -4.0, 26.0)) - self.y_shift_mm
        if self.params.pitch_deg:
            center = center + self._tilt(z, self.params.pitch_deg)
        return center

    def center_x(self, z: np.ndarray) -> np.ndarray:
        p = self.params
        center = (p.lateral_amplitude_mm * np.sin(2 * np.pi * np.asarray(z) / p.lateral_wavelength_mm
                                                  + p.lateral_phase) - self.x_shift_mm)
        if p.roll_deg:
            center = center + self._tilt(z, p.roll_deg)
        return center

    def _tilt(self, z: np.ndarray, angle_deg: float) -> np.ndarray:
        return np.tan(np.radians(angle_deg)) * (np.asarray(z, dtype=np.float64) - self.params.tilt_origin_z_mm)

    def slope(self, z: np.ndarray) -> np.ndarray:
        """dy/dz of the centreline."""
        z = np.asarray(z, dtype=np.float64)
        return (self.center_y(z + 0.5) - self.center_y(z - 0.5)) / 1.0

    # cross-sections -----------------------------------------------------------------------
    def cord_radii(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Native right-left and anterior-posterior cord radii (mm) in the plane normal to the cord."""
        level = self.level(z)
        c = self.params.conus_level
        knots = np.array([-2.5, -1.0, 0.0, 1.0, 2.5, 4.5, 6.0, 7.5, 9.0, 12.0, c - 3.5, c - 2.0,
                          c - 1.0, c, c + 0.3, 30.0])
        radius_rl = np.array([9.0, 7.0, 5.8, 5.8, 6.2, 6.9, 6.6, 5.5, 4.6, 4.3, 4.4, 4.8, 3.9,
                              0.9, 0.6, 0.6])
        radius_ap = np.array([7.5, 5.2, 4.3, 4.2, 4.0, 4.0, 3.9, 3.7, 3.4, 3.2, 3.3, 3.7, 3.2,
                              0.9, 0.6, 0.6])
        s = self.params.cord_scale
        return np.interp(level, knots, radius_rl) * s, np.interp(level, knots, radius_ap) * s

    def cosine(self, z: np.ndarray) -> np.ndarray:
        """Cosine of the angle between the cord and the z axis (cross-sections widen by 1/cos)."""
        return 1.0 / np.sqrt(1.0 + self.slope(z) ** 2)


# ----------------------------------------------------------------------------------------------
# layers


@dataclass(frozen=True)
class CordModel:
    """The cord as rendered (possibly expanded by a tumour), per z row of the field of view."""

    center_x: np.ndarray   # (nz,)
    center_y: np.ndarray   # (nz,)
    radius_x: np.ndarray   # (nz,) right-left radius
    radius_y: np.ndarray   # (nz,) anterior-posterior radius in the axial (z = const) plane
    native_radius_x: np.ndarray
    native_radius_y: np.ndarray
    in_mask: np.ndarray    # (nz,) bool: rows where the cord counts for the cord mask (below the medulla)


def cord_model(anatomy: Anatomy, geometry: AcquisitionGeometry,
               min_radius_x: np.ndarray | None = None,
               min_radius_y: np.ndarray | None = None,
               narrowing: np.ndarray | None = None) -> CordModel:
    """The cord of ``anatomy`` on the z rows of ``geometry``, widened to at least ``min_radius_*``.

    ``narrowing`` (nz,), 1 where the cord is free, scales its anterior-posterior radius where it is
    compressed (the right-left radius grows by a third of what the A-P one loses: a flattened cord).
    """
    z = geometry.z_centers().astype(np.float64)
    a, b = anatomy.cord_radii(z)
    b_axial = b / anatomy.cosine(z)
    native_a, native_b = a.copy(), b_axial.copy()
    if min_radius_x is not None:
        a = np.maximum(a, min_radius_x)
    if min_radius_y is not None:
        b_axial = np.maximum(b_axial, min_radius_y)
    if narrowing is not None:
        a = a * (1.0 + (1.0 - narrowing) / 3.0)
        b_axial = b_axial * narrowing
    return CordModel(anatomy.center_x(z), anatomy.center_y(z), a, b_axial, native_a, native_b,
                     anatomy.level(z) >= -1.0)


def cord_layer(cord: CordModel, geometry: AcquisitionGeometry) -> Layer | None:
    y = geometry.y_centers()[:, None]
    half = superellipse_half(cord.radius_x[None], cord.radius_y[None], y - cord.center_y[None])
    return make_layer("cord", np.broadcast_to(cord.center_x[None], half.shape), half,
                      TISSUE["cord"][0], TISSUE["cord"][1])


def anatomy_layers(anatomy: Anatomy, geometry: AcquisitionGeometry, cord: CordModel,
                   rng: np.random.Generator) -> list[Layer]:
    """Every structure but the cord and the lesions, in painting order (outermost first)."""
    p = anatomy.params
    y1 = geometry.y_centers().astype(np.float32)
    z1 = geometry.z_centers().astype(np.float64)
    y = y1[:, None]
    level_z = anatomy.level(z1)
    cy = cord.center_y[None].astype(np.float32)
    cx = cord.center_x[None].astype(np.float32)
    dy = y - cy
    shape2d = (y1.size, z1.size)
    layers: list[Layer | None] = []

    def add(name, center, half, tissue=None, t2=None, t1=None):
        if tissue is not None:
            t2, t1 = TISSUE[tissue]
        half = np.broadcast_to(np.asarray(half, dtype=np.float32), shape2d)
        layers.append(make_layer(name, np.broadcast_to(np.asarray(center, np.float32), shape2d),
                                 half, t2, t1))

    def by_level(knots, values):
        return np.interp(level_z, knots, values)[None].astype(np.float32)

    # level perpendicular to the cord, for endplates and joints that follow the curvature
    slope = anatomy.slope(z1)[None]
    z_perp = z1[None] + slope * dy / (1.0 + slope ** 2)
    level2d = anatomy.level(z_perp)
    segment = np.floor(level2d).astype(int)
    frac = level2d - segment
    seg_idx = np.clip(segment, 0, len(SEGMENT_NAMES) - 1)
    disc_frac = _DISC_FRACTION[seg_idx]

    # canal geometry (native, widened where the cord is expanded)
    margin = p.csf_margin_mm
    csf_a = np.maximum(cord.radius_x + margin, np.interp(level_z, [p.conus_level - 1, p.conus_level + 1], [0, 6.5]))
    csf_b_extra = np.interp(level_z, [-2.0, 0.0, 6.5, 8.0], [10.0, 0.0, 0.0, 0.7]) + margin * 0.85
    csf_b = np.maximum(cord.radius_y + csf_b_extra, np.interp(level_z, [p.conus_level - 1, p.conus_level + 1], [0, 6.0]))
    csf_shift = -np.interp(level_z, [-2.0, 0.0, 6.5, 8.0], [8.0, 0.0, 0.0, 1.0])
    csf_cy = cord.center_y + csf_shift
    canal_a = csf_a + 1.5
    canal_extra = np.interp(level_z, [6.0, 8.0], [1.2, 2.8])
    canal_b = csf_b + canal_extra
    canal_cy = csf_cy - 0.6 * canal_extra
    canal_front = (canal_cy + canal_b)[None].astype(np.float32)
    canal_back = (canal_cy - canal_b)[None].astype(np.float32)
    spine_rows = (level_z > -0.2)[None]

    # body contour, subcutaneous fat, muscle
    back = by_level([-1.0, 0.0, 6.0, 8.0, 19.0, 21.0], [62.0, 50.0, 50.0, 56.0, 58.0, 66.0])
    front = by_level([-1.0, 0.0, 6.0, 8.5, 19.0], [115.0, 80.0, 85.0, 175.0, 165.0])
    width = by_level([-1.0, 0.0, 6.0, 8.5], [75.0, 60.0, 62.0, 165.0])
    fat = p.subcutaneous_fat_mm * by_level([-1.0, 0.0, 6.0, 9.0], [0.4, 0.55, 0.7, 1.0])
    skin_back = -(back + fat)
    body_cy = cy + (front + skin_back) / 2
    body_b = (front - skin_back) / 2
    add("body_fat", cx, superellipse_half(width, body_b, y - body_cy, 2.2), "fat")
    add("muscle", cx, superellipse_half(width - fat, body_b - fat, y - body_cy, 2.2), "muscle")
    # viscera of the abdomen, lungs, heart and aorta in front of the thoracic spine
    z_of = anatomy.spine.z_of_level
    abdomen = (level_z > 18.5)[None]
    add("viscera", cx, np.where(abdomen & (dy > 45), superellipse_half(width - fat - 15, body_b - fat - 25, y - body_cy - 20), 0), "viscera")
    lung_top, lung_bottom = float(z_of(6.6)), float(z_of(18.0))
    lung_cz, lung_rz = (lung_top + lung_bottom) / 2, (lung_top - lung_bottom) / 2
    dz_lung = (z1[None] - lung_cz) / lung_rz
    for side in (-1.0, 1.0):
        lung_y = cy + 55.0
        inside = 1.0 - dz_lung ** 2 - ((y - lung_y) / 85.0) ** 2
        add("lung", cx + side * 75.0, 62.0 * np.sqrt(np.clip(inside, 0, None)), "lung")
    heart_cz = float(z_of(12.0))
    for name, scale_r, tissue in (("heart", 1.0, "heart"), ("heart_blood", 0.7, "flow_void")):
        inside = 1.0 - ((z1[None] - heart_cz) / (55.0 * scale_r)) ** 2 - ((y - cy - 105.0) / (50.0 * scale_r)) ** 2
        add(name, cx - 15.0, 55.0 * scale_r * np.sqrt(np.clip(inside, 0, None)), tissue)
    # posterior fossa
    fossa_cz = 32.0
    for name, grow, tissue in (("occipital_bone", 6.0, "cortical"), ("cerebellum", 0.0, "brain")):
        inside = (1.0 - ((z1[None] - fossa_cz) / (32.0 + grow)) ** 2
                  - ((y - cy + 32.0) / (27.0 + grow)) ** 2)
        add(name, cx, (55.0 + grow) * np.sqrt(np.clip(inside, 0, None)), tissue)
    # paraspinal muscles beside the spine (drawn over the lungs' posterior recesses)
    para = spine_rows & (dy > -back + 2) & (dy < 12.0)
    add("paraspinal", cx, np.where(para & (level_z > 0.5)[None], 45.0, 0.0), "muscle")

    # vertebral bodies and discs
    depth = by_level([0.0, 1.0, 6.0, 8.0, 18.0, 20.0], [10.0, 15.0, 16.0, 21.0, 28.0, 31.0])
    half_w = by_level([0.0, 1.0, 6.0, 8.0, 18.0, 20.0], [5.5, 8.5, 9.5, 13.0, 18.0, 22.0])
    body_cy2 = canal_front + 1.0 + depth / 2
    body_dy = y - body_cy2
    in_column = (segment >= 0) & (segment <= 24) & spine_rows
    is_body = in_column & (frac < 1.0 - disc_frac) & ((segment >= 1) | (frac > 0.3))
    is_disc = in_column & (frac >= 1.0 - disc_frac) & (segment >= 1) & (segment <= 23)
    outer = superellipse_half(half_w, depth / 2, body_dy, 3.0)
    add("vertebral_cortex", cx, np.where(is_body, outer, 0), "cortical")
    body_len = 1.0 - disc_frac
    inner_body = is_body & (frac > 0.05) & (frac < body_len - 0.05)
    marrow = np.asarray(p.marrow)[seg_idx]
    add("vertebral_marrow", cx, np.where(inner_body, superellipse_half(half_w - 1.2, depth / 2 - 1.2, body_dy, 3.0), 0),
        t2=TISSUE["marrow"][0] * marrow, t1=TISSUE["marrow"][1] * marrow)
    add("disc_annulus", cx, np.where(is_disc, outer, 0), "annulus")
    disc_pos = (frac - (1.0 - disc_frac)) / np.maximum(disc_frac, 1e-3)
    nucleus_rows = is_disc & (disc_pos > 0.2) & (disc_pos < 0.8)
    nucleus = np.asarray(p.disc_nucleus)[seg_idx]
    add("disc_nucleus", cx, np.where(nucleus_rows, superellipse_half(half_w * 0.55, depth * 0.3, body_dy, 2.0), 0),
        t2=TISSUE["nucleus"][0] * nucleus, t1=TISSUE["nucleus"][1])

    # airway in the neck
    airway_rows = ((level_z > -1.0) & (level_z < 10.5))[None]
    trachea = by_level([5.0, 6.0], [0.0, 1.0])
    air_cy = body_cy2 + depth / 2 + 4.0 + 8.0 + 10.0 * trachea
    air_rx = 14.0 - 5.0 * trachea
    add("airway", cx, np.where(airway_rows, superellipse_half(air_rx, 7.5, y - air_cy, 2.0), 0), "air")
    aorta_rows = ((level_z > 8.5) & (level_z < 19.5))[None]
    add("aorta", cx - 22.0, np.where(aorta_rows, superellipse_half(11.0, 11.0, y - (body_cy2 + depth / 2 - 2.0), 2.0), 0),
        "flow_void")

    # posterior elements: ligamentum flavum, laminae and spinous processes (sloping downwards)
    post_depth = canal_back - y  # mm posterior of the canal
    incline = np.tan(np.radians(by_level([0.0, 6.0, 8.0, 13.0, 17.0, 19.0], [12.0, 15.0, 40.0, 58.0, 30.0, 5.0])))
    level_pe = anatomy.level(z_perp + post_depth * incline)
    seg_pe = np.floor(level_pe)
    frac_pe = level_pe - seg_pe
    length = np.asarray([10.0, 32.0, 22.0, 22.0, 23.0, 25.0, 36.0] + [40.0] * 12 + [32.0] * 5 + [25.0])[
        np.clip(seg_pe.astype(int), 0, 24)]
    behind = spine_rows & (post_depth >= 0) & (level_pe >= 0)
    add("ligamentum_flavum", cx, np.where(behind & (post_depth < 3.0), canal_a[None] + 2.5, 0), "ligament")
    arch = behind & (frac_pe > 0.12) & (frac_pe < 0.68) & (post_depth < length)
    lamina_half = np.where(post_depth < 8.0, canal_a[None] + 6.0, 3.8)
    add("posterior_cortex", cx, np.where(arch, lamina_half, 0), "cortical")
    arch_inner = arch & (frac_pe > 0.17) & (frac_pe < 0.63) & (post_depth > 1.0) & (post_depth < length - 1.5)
    add("posterior_marrow", cx, np.where(arch_inner, lamina_half - 1.2, 0),
        t2=TISSUE["marrow"][0] * 0.85, t1=TISSUE["marrow"][1] * 0.9)
    # articular pillars (lateral slices) with facet joints
    pillar_rows = spine_rows & (level2d > 0.2) & (level2d < 24.0) & (np.abs(y - canal_cy[None]) < canal_b[None] + 3.0)
    joint = (frac > 0.8) & (frac < 0.9)
    for side in (-1.0, 1.0):
        center = cx + side * (canal_a[None] + 5.0)
        add("articular_pillar", center, np.where(pillar_rows, 3.2, 0),
            t2=np.where(joint, TISSUE["joint"][0], TISSUE["marrow"][0] * 0.85),
            t1=np.where(joint, TISSUE["joint"][1], TISSUE["marrow"][1] * 0.9))

    # canal: epidural fat / venous plexus, CSF
    epi = by_level([5.0, 8.0], [0.0, 1.0])
    epi_t2 = TISSUE["venous_plexus"][0] * (1 - epi) + TISSUE["epidural_fat"][0] * epi
    epi_t1 = TISSUE["venous_plexus"][1] * (1 - epi) + TISSUE["epidural_fat"][1] * epi
    add("epidural", cx, np.where(spine_rows, superellipse_half(canal_a[None], canal_b[None], y - canal_cy[None]), 0),
        t2=epi_t2, t1=epi_t1)
    csf_t2 = TISSUE["csf"][0] * (1.0 + 0.04 * rng.standard_normal())
    add("csf", cx, np.where((level_z < 25.5)[None], superellipse_half(csf_a[None], csf_b[None], y - csf_cy[None]), 0),
        t2=csf_t2, t1=TISSUE["csf"][1])
    # cauda equina: a few nerve roots in the sac below the conus
    roots = (level_z > p.conus_level - 0.3)[None]
    for k, (ox, oy) in enumerate(((-1.5, -1.0), (1.6, -1.2), (0.0, -2.5), (-2.5, 0.8), (2.4, 0.6))):
        add("nerve_root", cx + ox, np.where(roots, superellipse_half(0.9, 0.9, y - cy - oy, 2.0), 0), "cord")
    return [layer for layer in layers if layer is not None]
