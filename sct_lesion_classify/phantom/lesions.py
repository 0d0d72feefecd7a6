"""The four lesion classes and their classic MRI signs, as parts placed in the cord.

A lesion is a set of :class:`LesionPart` objects, each a spindle (superellipse profile along the
cord, elliptic cross-section) at an offset from the cord centre:

- astrocytoma: long, eccentric, ill-defined (an oedema halo outside the mask, irregular outline),
  heterogeneous, intratumoral cysts; expands the cord;
- ependymoma: central, well-defined, more homogeneous; polar cysts (rostral/caudal, part of the
  whole-lesion mask) and the hemorrhagic cap sign (hypointense rim at the tumour poles); expands
  the cord;
- MS: one to five short plaques, peripheral (dorsal and lateral columns), sharp, homogeneous;
- NMOSD: long central lesions over most of the cross-section, mild swelling, ill-defined,
  bright spotty foci (CSF-like T2 signal).

Sizes are solved from the sampled total volume and extension (``cohort``), so that the measured
masks follow the published distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from sct_lesion_classify.phantom.anatomy import TISSUE, Anatomy, CordModel, cord_model
from sct_lesion_classify.phantom.cohort import SubjectParams
from sct_lesion_classify.phantom.geometry import AcquisitionGeometry
from sct_lesion_classify.phantom.raster import Layer, crop_box, make_layer, superellipse_half

_MAX_RADIUS_X_MM = 14.0
_MAX_RADIUS_Y_MM = 10.5

#: Drawn volume is multiplied by this before the parts are sized: it compensates what partial volume
#: and clipping to the cord's outline take from the mask, so that the *measured* volumes follow the
#: published distribution (calibrated over 200 subjects per class). Clipping takes from the largest
#: ependymomas, MS plaques and NMOSD lesions only (the top decile keeps 0.6-0.7 of its drawn volume),
#: so these factors bring the measured *mean* to Table 1's and leave the median 3-11% above the
#: log-normal's. Astrocytomas lose nothing (measured / drawn = 1.00 at 1.0): until issue 15 their 1.2
#: made them 20% larger than drawn, as large as the ependymomas (``phantom.table1``).
VOLUME_CALIBRATION = {"astrocytoma": 1.0, "ependymoma": 1.2, "MS": 1.2, "NMOSD": 1.12}
#: Same for the extension, by class; none is needed: the measured extension is 0.98-1.02 of the drawn
#: one for every class (``phantom.table1``, 300 subjects per class). Astrocytomas had 0.87 here until
#: issue 15, which made their measured extension 13% shorter than Table 1's (median 3.4 segments).
EXTENT_CALIBRATION: dict[str, float] = {}


@dataclass(frozen=True)
class LesionPart:
    """One spindle-shaped component of a lesion (all lengths in mm)."""

    kind: str            # solid | cyst | cap | focus | halo
    z_center: float
    half_length: float
    offset_x: float      # from the cord centre
    offset_y: float
    radius_x: float      # right-left radius at the middle
    radius_y: float      # anterior-posterior radius (axial plane) at the middle
    profile: float       # superellipse exponent along the cord (2: ellipsoid, larger: blunter)
    in_mask: bool
    t2_ratio: float      # intensity relative to the cord
    t1_ratio: float
    texture: float       # amplitude of the heterogeneity
    irregularity: float  # amplitude of the outline's variation along the cord
    phases: tuple[float, float, float] = (0.0, 1.0, 2.0)
    expands_cord: bool = False   # the cord widens to hold the part (tumours)
    swell: float = 0.0           # the cord swells by this fraction where the part is (NMOSD)

    def radii(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Right-left and anterior-posterior radii at z (0 outside the part)."""
        u = np.abs((np.asarray(z, dtype=np.float64) - self.z_center) / self.half_length)
        shape = np.clip(1.0 - u ** self.profile, 0.0, None) ** (1.0 / self.profile)
        wobble = 1.0 + self.irregularity * (
            np.sin(z / 7.0 + self.phases[0]) * 0.6 + np.sin(z / 3.1 + self.phases[1]) * 0.4)
        scale = np.where(u < 1.0, shape * wobble, 0.0)
        return self.radius_x * scale, self.radius_y * scale


def mask_parts(parts: list[LesionPart]) -> list[LesionPart]:
    """The parts that count for the lesion mask (all of them if none does)."""
    return [p for p in parts if p.in_mask] or parts


def lesion_span(parts: list[LesionPart]) -> tuple[float, float]:
    """Lowest and highest position along the cord (mm) of the parts that count for the mask.

    The phantoms' z or, for lesions inserted into a real cord, the arc coordinate
    (``insertion.plan``): whichever the parts' ``z_center`` is in.
    """
    counted = mask_parts(parts)
    return (min(p.z_center - p.half_length for p in counted),
            max(p.z_center + p.half_length for p in counted))


def _kappa(profile: float) -> float:
    """Mean of the squared radius profile along the part (volume = pi rx ry 2 hl kappa)."""
    u = np.linspace(0.0, 1.0, 2001)
    return float(np.trapezoid(np.clip(1.0 - u ** profile, 0, None) ** (2.0 / profile), u)
                 if hasattr(np, "trapezoid") else np.trapz(np.clip(1.0 - u ** profile, 0, None) ** (2.0 / profile), u))


def place_lesion(rng: np.random.Generator, params: SubjectParams, anatomy: Anatomy) -> tuple[float, float]:
    """Top and bottom level coordinates of the whole lesion span, inside the cord."""
    extent = params.extent_segments * EXTENT_CALIBRATION.get(params.diagnosis, 1.0)
    conus = anatomy.params.conus_level
    lowest_center = conus - 0.3 - extent / 2
    if params.region == "cervical":
        center = rng.uniform(max(1.3, 0.3 + extent / 2), 6.8)
    elif params.region == "thoracic":
        center = rng.uniform(7.5, 17.5)
    else:
        center = conus - rng.uniform(0.3, 0.8) - extent / 2
    center = float(np.clip(center, 0.3 + extent / 2, max(lowest_center, 0.3 + extent / 2)))
    return center - extent / 2, center + extent / 2


def build_parts(rng: np.random.Generator, params: SubjectParams, anatomy: Anatomy,
                top_level: float, bottom_level: float) -> list[LesionPart]:
    """Lesion parts of one subject (see the module docstring)."""
    spine = anatomy.spine
    z_top = float(spine.z_of_level(top_level))
    z_bottom = float(spine.z_of_level(bottom_level))
    zs = np.linspace(z_bottom, z_top, 9)
    a0, b0 = anatomy.cord_radii(zs)
    a0 = float(np.mean(a0))
    b0 = float(np.mean(b0 / anatomy.cosine(zs)))
    volume = params.volume_ml * 1000.0 * VOLUME_CALIBRATION[params.diagnosis]
    span = z_top - z_bottom
    dx = params.diagnosis
    phases = lambda: tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3))  # noqa: E731
    parts: list[LesionPart] = []
    enh = params.enhancing

    if dx in ("astrocytoma", "ependymoma"):
        astro = dx == "astrocytoma"
        ecc = abs(rng.normal(0.55, 0.22)) if astro else abs(rng.normal(0.06, 0.07))
        angle = rng.uniform(0, 2 * np.pi)
        cyst_parts: list[LesionPart] = []
        solid_top, solid_bottom = z_top, z_bottom
        polar_p = 0.2 if astro else 0.6
        for end in ("top", "bottom"):
            if rng.random() < polar_p * (1.0 if end == "top" else 0.8):
                length = span * rng.uniform(0.12, 0.3)
                c = z_top - length / 2 if end == "top" else z_bottom + length / 2
                s = rng.uniform(0.45, 0.7)
                cyst_parts.append(LesionPart("cyst", c, length / 2 + 1.0, 0.0, 0.0, s * a0, s * b0,
                                             2.5, True, rng.uniform(2.35, 2.6), 0.3, 0.02, 0.03,
                                             phases(), True))
                if end == "top":
                    solid_top -= length - 2.0
                else:
                    solid_bottom += length - 2.0
        profile = rng.uniform(2.2, 3.0) if astro else rng.uniform(2.6, 3.6)
        half = (solid_top - solid_bottom) / 2
        cyst_volume = sum(np.pi * c.radius_x * c.radius_y * 2 * c.half_length * _kappa(c.profile) * 0.6
                          for c in cyst_parts)
        solid_volume = max(volume - cyst_volume, 0.4 * volume)
        s = np.sqrt(solid_volume / (np.pi * 2 * half * _kappa(profile) * a0 * b0))
        s = max(s, 0.35)
        rx, ry = s * a0, s * b0
        limit = min(_MAX_RADIUS_X_MM / rx, _MAX_RADIUS_Y_MM / ry, 1.0)
        if limit < 1.0:  # too fat for the canal: longer instead
            rx, ry = rx * limit, ry * limit
            half = half * min(1.0 / limit ** 2, 1.3)
        ox, oy = ecc * a0 * np.cos(angle), ecc * b0 * np.sin(angle)
        center = (solid_top + solid_bottom) / 2
        t2 = rng.uniform(1.55, 2.1) if astro else rng.uniform(1.45, 1.95)
        t1 = (rng.uniform(1.4, 1.7) if astro else rng.uniform(1.6, 1.9)) if enh else rng.uniform(0.8, 0.92)
        texture = rng.uniform(0.12, 0.22) if astro else rng.uniform(0.05, 0.11)
        irregular = rng.uniform(0.08, 0.18) if astro else rng.uniform(0.02, 0.06)
        if rng.random() < (0.8 if astro else 0.25):
            grow = rng.uniform(1.15, 1.35)
            parts.append(LesionPart("halo", center, half * rng.uniform(1.08, 1.2), ox, oy, rx * grow + 1.0,
                                    ry * grow + 0.8, profile, False, rng.uniform(1.2, 1.35), 1.0, 0.05,
                                    irregular, phases(), False))
        solid = LesionPart("solid", center, half, ox, oy, rx, ry, profile, True, t2, t1, texture,
                           irregular, phases(), True)
        parts.append(solid)
        parts.extend(cyst_parts)
        if rng.random() < (0.25 if astro else 0.2):  # intratumoral cysts
            for _ in range(int(rng.integers(1, 3))):
                c = center + rng.uniform(-0.5, 0.5) * half
                parts.append(LesionPart("cyst", c, half * rng.uniform(0.15, 0.3), ox + rng.uniform(-0.3, 0.3) * rx,
                                        oy + rng.uniform(-0.3, 0.3) * ry, rx * rng.uniform(0.3, 0.5),
                                        ry * rng.uniform(0.3, 0.5), 2.0, True, rng.uniform(2.3, 2.6), 0.3,
                                        0.02, 0.05, phases(), False))
        if rng.random() < (0.05 if astro else 0.35):  # hemorrhagic cap sign
            for sign in (-1.0, 1.0):
                if rng.random() < 0.75 or sign > 0:
                    parts.append(LesionPart("cap", center + sign * 0.86 * half, rng.uniform(1.5, 2.5), ox, oy,
                                            0.72 * rx, 0.72 * ry, 6.0, True, rng.uniform(0.25, 0.4), 0.7, 0.05,
                                            0.02, phases(), False))
        return parts

    # demyelinating lesions
    ms = dx == "MS"
    count = params.count
    if count == 1:
        lengths = np.array([span])
    else:
        fractions = rng.uniform(0.3, 0.55 if ms else 0.75, count) if count > 1 else np.ones(1)
        fractions[0] = max(fractions[0], 0.5) if not ms else fractions[0]
        room = span / (fractions.sum() + 0.15 * (count - 1))
        lengths = np.maximum(fractions * min(room, span), 4.0)
    gap = max((span - lengths.sum()) / max(count - 1, 1), 4.0)
    volumes = volume * lengths * rng.uniform(0.6, 1.4, count)
    volumes *= volume / volumes.sum()
    z_cursor = z_top
    for k in range(count):
        length = lengths[k]
        center = z_cursor - length / 2
        z_cursor -= length + gap
        if ms:
            ecc = float(np.clip(rng.normal(0.5, 0.17), 0.0, 0.85))
            angle = (-np.pi / 2 if rng.random() < 0.55 else rng.choice([0.0, np.pi])) + rng.normal(0, 0.45)
            profile, s_max = rng.uniform(2.0, 2.6), 0.8
        else:
            ecc = abs(rng.normal(0.1, 0.09))
            angle = rng.uniform(0, 2 * np.pi)
            profile, s_max = rng.uniform(2.4, 3.4), 1.0
        s = np.sqrt(volumes[k] / (np.pi * length * _kappa(profile) * a0 * b0))
        s = float(np.clip(s, 0.25, s_max))
        rx, ry = s * a0 * rng.uniform(0.9, 1.15), s * b0 * rng.uniform(0.9, 1.15)
        ox, oy = ecc * a0 * np.cos(angle), ecc * b0 * np.sin(angle)
        # keep the lesion inside the cord's outline as far as possible
        pull = min(1.0, (0.97 - s) / max(ecc, 1e-3)) if ecc > 0 else 1.0
        ox, oy = ox * max(pull, 0.3), oy * max(pull, 0.3)
        t2 = rng.uniform(1.8, 2.3) if ms else rng.uniform(1.6, 2.1)
        t1 = (rng.uniform(1.35, 1.6) if ms else rng.uniform(1.3, 1.5)) if enh else rng.uniform(0.85, 0.95)
        texture = rng.uniform(0.03, 0.07) if ms else rng.uniform(0.08, 0.16)
        if not ms and rng.random() < 0.7:
            parts.append(LesionPart("halo", center, length / 2 * 1.12, ox, oy, rx * 1.2 + 0.8, ry * 1.2 + 0.6,
                                    profile, False, rng.uniform(1.15, 1.3), 1.0, 0.05, 0.05, phases(), False))
        swell = float(rng.uniform(0.08, 0.22)) if (not ms and rng.random() < 0.6) else 0.0
        parts.append(LesionPart("solid", center, length / 2, ox, oy, rx, ry, profile, True, t2, t1, texture,
                                rng.uniform(0.02, 0.06) if ms else rng.uniform(0.05, 0.12), phases(), False,
                                swell))
        if not ms and rng.random() < 0.55:  # bright spotty lesions
            for _ in range(int(rng.integers(2, 7))):
                parts.append(LesionPart("focus", center + rng.uniform(-0.4, 0.4) * length,
                                        rng.uniform(1.5, 3.0), ox + rng.uniform(-0.4, 0.4) * rx,
                                        oy + rng.uniform(-0.4, 0.4) * ry, rng.uniform(1.4, 2.1),
                                        rng.uniform(0.9, 1.4), 2.0, True, rng.uniform(2.45, 2.7),
                                        1.0, 0.02, 0.02, phases(), False))
    return parts


def cord_expansion(parts: list[LesionPart], z: np.ndarray, native_x: np.ndarray,
                   native_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum cord radii per z row so that expanding parts fit (tumours; NMOSD swelling)."""
    need_x = np.zeros_like(native_x)
    need_y = np.zeros_like(native_y)
    for part in parts:
        if not (part.expands_cord or part.swell > 0):
            continue
        rx, ry = part.radii(z)
        present = rx > 0
        if part.swell > 0:
            grow = np.where(present, 1.0 + part.swell, 0.0)
            need_x = np.maximum(need_x, native_x * grow)
            need_y = np.maximum(need_y, native_y * grow)
        if not part.expands_cord:
            continue
        need_x = np.maximum(need_x, np.where(present, abs(part.offset_x) + rx + 0.9, 0.0))
        need_y = np.maximum(need_y, np.where(present, abs(part.offset_y) + ry + 0.7, 0.0))
    return need_x, need_y


def expanded_cord(parts: list[LesionPart], anatomy: Anatomy, geometry: AcquisitionGeometry,
                  narrowing: np.ndarray | None = None) -> CordModel:
    """The subject's cord on ``geometry``, widened where the parts need it (:func:`cord_expansion`).

    ``narrowing``: see ``anatomy.cord_model`` (a compressed level of the random styles).
    """
    z = geometry.z_centers().astype(np.float64)
    native = cord_model(anatomy, geometry)
    need_x, need_y = cord_expansion(parts, z, native.radius_x, native.radius_y)
    return cord_model(anatomy, geometry, need_x, need_y, narrowing)


def lesion_layers(parts: list[LesionPart], cord: CordModel, geometry: AcquisitionGeometry,
                  rng: np.random.Generator) -> list[tuple[LesionPart, Layer]]:
    """One layer per part, clipped to the cord's interval (so the lesion mask lies in the cord)."""
    y1 = geometry.y_centers()
    z1 = geometry.z_centers().astype(np.float64)
    order = {"halo": 0, "solid": 1, "cyst": 2, "cap": 3, "focus": 4}
    out: list[tuple[LesionPart, Layer]] = []
    cord_t2, cord_t1 = TISSUE["cord"]
    for part in sorted(parts, key=lambda p: order[p.kind]):
        rx, ry = part.radii(z1)
        rows = np.flatnonzero(rx > 0)
        if rows.size == 0:
            continue
        zs = slice(rows[0], rows[-1] + 1)
        cy = (cord.center_y[zs] + part.offset_y)[None]
        cx = (cord.center_x[zs] + part.offset_x)[None]
        half = superellipse_half(rx[zs][None], ry[zs][None], y1[:, None] - cy)
        box = crop_box(half > 0)
        if box is None:
            continue
        box = (box[0], slice(zs.start + box[1].start, zs.start + box[1].stop))
        local = (box[0], slice(box[1].start - zs.start, box[1].stop - zs.start))
        half = half[local]
        cx_box = np.broadcast_to(cx, (y1.size, zs.stop - zs.start))[local]
        lo, hi = cx_box - half, cx_box + half
        cord_half = superellipse_half(cord.radius_x[box[1]][None], cord.radius_y[box[1]][None],
                                      y1[box[0], None] - cord.center_y[box[1]][None])
        cord_lo = cord.center_x[box[1]][None] - cord_half
        cord_hi = cord.center_x[box[1]][None] + cord_half
        lo, hi = np.maximum(lo, cord_lo), np.minimum(hi, cord_hi)
        t2: float | np.ndarray = cord_t2 * part.t2_ratio
        t1: float | np.ndarray = cord_t1 * part.t1_ratio
        if part.texture > 0.03:
            shape = (geometry.shape[0], box[0].stop - box[0].start, box[1].stop - box[1].start)
            sigma_px = 2.0 / geometry.pixel_mm
            noise = gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                    (0.7, sigma_px, sigma_px), mode="nearest")
            noise /= max(float(noise.std()), 1e-6)
            t2 = (cord_t2 * part.t2_ratio * (1.0 + part.texture * noise)).astype(np.float32)
            patchy = 2.5 * part.texture if part.t1_ratio > 1.2 else 0.5 * part.texture
            t1 = (cord_t1 * part.t1_ratio * (1.0 + patchy * noise)).astype(np.float32)
        layer = make_layer(part.kind, (lo + hi) / 2, (hi - lo) / 2, t2, t1, box=box)
        if layer is not None:
            out.append((part, layer))
    return out
