"""Structures outside the cord that look like lesions, and a compressed level (random styles).

Every structure is a :class:`~sct_lesion_classify.phantom.raster.Layer` that follows the cord
centre of its row (so it tilts and curves with the spine), painted after the anatomy and before the
cord, so it never enters the cord or lesion masks:

- ``bright_blob``: lesion-bright spots (a ratio to the cord in the lesions' own range, 1.5-2.6) in
  the epidural fat beside the thecal sac, in the posterior soft tissue (fat) and in a vertebral
  body (haemangioma);
- ``vessel``: tubes of a drawn intensity (flow void or slow-flow bright) beside the spine
  (vertebral arteries), in the anterior epidural space (veins) and behind it;
- ``csf_flow_void``: dark spots of CSF flow in the sleeve, in front of or behind the cord;
- ``disc_bulge``: a disc protruding into the canal at a compressed level, where the cord is
  flattened (:meth:`Compression.narrowing`); the level is at least 1.5 segments from the lesion, so the lesion
  and its statistics are untouched.

Degenerated discs are drawn by ``framing`` (the nucleus of ``AnatomyParams``); textured muscle and
CSF pulsation are intensity patterns (``appearance.textured``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sct_lesion_classify.phantom.anatomy import TISSUE, Anatomy, CordModel, disc_level, reference
from sct_lesion_classify.phantom.geometry import AcquisitionGeometry
from sct_lesion_classify.phantom.raster import Layer, make_layer, superellipse_half
from sct_lesion_classify.phantom.style import LookalikeDraw

#: Distance (segments) between a compressed disc and the lesion span.
COMPRESSION_CLEARANCE = 1.5
#: Half-height of the compressed stretch, in segments.
COMPRESSION_HALF_WIDTH = 0.45


@dataclass(frozen=True)
class Compression:
    """A compressed level: the disc's level coordinate and the A-P cord diameter left there."""

    level: float
    fraction: float

    def narrowing(self, anatomy: Anatomy, geometry: AcquisitionGeometry) -> np.ndarray:
        """Factor (nz,) on the cord's A-P radius: ``fraction`` at the disc, 1 beyond half a segment."""
        distance = np.abs(anatomy.level(geometry.z_centers().astype(np.float64)) - self.level)
        window = np.where(distance < COMPRESSION_HALF_WIDTH,
                          np.cos(np.pi / 2 * distance / COMPRESSION_HALF_WIDTH) ** 2, 0.0)
        return 1.0 - (1.0 - self.fraction) * window


@dataclass(frozen=True)
class Spot:
    """An ellipsoid-like spot following the cord: centre (z and offset from the cord centre), radii."""

    name: str
    z_center: float
    half_length: float
    offset_x: float
    offset_y: float
    radius_x: float
    radius_y: float
    t2: float
    t1: float
    profile: float = 2.0   # along the cord: 2 ellipsoid, larger blunter (a vessel)


def place_compression(draw: LookalikeDraw, anatomy: Anatomy, geometry: AcquisitionGeometry,
                      lesion_levels: tuple[float, float], rng: np.random.Generator) -> Compression | None:
    """A disc in the field of view far enough from the lesion, or None (none drawn or none fits)."""
    if draw.compression_fraction is None:
        return None
    z = geometry.z_centers().astype(np.float64)
    levels_in_view = anatomy.level(np.array([z[-1], z[0]]))
    top, bottom = lesion_levels
    candidates = [disc_level(s) for s in range(1, 24)]
    candidates = [lv for lv in candidates
                  if levels_in_view[0] + 0.5 <= lv <= levels_in_view[1] - 0.5
                  and (lv < top - COMPRESSION_CLEARANCE or lv > bottom + COMPRESSION_CLEARANCE)]
    if not candidates:
        return None
    return Compression(candidates[int(rng.integers(len(candidates)))], draw.compression_fraction)


def lookalike_layers(draw: LookalikeDraw, compression: Compression | None, anatomy: Anatomy,
                     geometry: AcquisitionGeometry, cord: CordModel,
                     rng: np.random.Generator) -> list[Layer]:
    """The layers of the module docstring, in painting order."""
    z = geometry.z_centers().astype(np.float64)
    z_lo, z_hi = float(z[0]), float(z[-1])
    cord_t2, cord_t1 = TISSUE["cord"]
    csf_t2, csf_t1 = TISSUE["csf"]
    radius_y = float(np.median(cord.radius_y))
    spots: list[Spot] = []
    for _ in range(draw.vessels):
        site = int(rng.integers(3))
        side = 1.0 if rng.random() < 0.5 else -1.0
        ox, oy = ((side * rng.uniform(12.0, 22.0), rng.uniform(0.0, 15.0)),
                  (rng.uniform(-4.0, 4.0), radius_y + rng.uniform(2.0, 4.0)),
                  (rng.uniform(-15.0, 15.0), -rng.uniform(15.0, 40.0)))[site]
        radius = rng.uniform(0.8, 2.5)
        spots.append(Spot("vessel", rng.uniform(z_lo, z_hi), rng.uniform(15.0, 75.0), ox, oy,
                          radius, radius, *reference("vessel"), profile=8.0))
    for _ in range(draw.flow_voids):
        side = 1.0 if rng.random() < 0.5 else -1.0
        ry = rng.uniform(0.6, 1.4)
        spots.append(Spot("csf_flow_void", rng.uniform(z_lo, z_hi), rng.uniform(3.0, 15.0),
                          rng.uniform(-2.5, 2.5), side * (radius_y + ry + rng.uniform(0.2, 0.8)),
                          rng.uniform(1.0, 3.0), ry, csf_t2 * rng.uniform(0.05, 0.5),
                          csf_t1 * rng.uniform(0.3, 1.0)))
    for _ in range(draw.bright_blobs):
        site = int(rng.integers(3))
        side = 1.0 if rng.random() < 0.5 else -1.0
        if site == 0:    # epidural fat beside the thecal sac
            ox, oy = rng.uniform(-3.0, 3.0), side * (radius_y + rng.uniform(3.5, 6.0))
            rx, ry, hl = rng.uniform(1.5, 4.0), rng.uniform(1.0, 2.5), rng.uniform(3.0, 12.0)
        elif site == 1:  # posterior soft tissue
            ox, oy = rng.uniform(-25.0, 25.0), -rng.uniform(20.0, 60.0)
            rx, ry, hl = rng.uniform(2.0, 8.0), rng.uniform(2.0, 8.0), rng.uniform(2.0, 15.0)
        else:            # vertebral body
            ox, oy = rng.uniform(-8.0, 8.0), rng.uniform(14.0, 24.0)
            rx, ry, hl = rng.uniform(2.0, 6.0), rng.uniform(2.0, 6.0), rng.uniform(2.0, 8.0)
        spots.append(Spot("bright_blob", rng.uniform(z_lo, z_hi), hl, ox, oy, rx, ry,
                          cord_t2 * rng.uniform(1.5, 2.6), cord_t1 * rng.uniform(0.9, 1.6)))
    if compression is not None:
        z_disc = float(anatomy.spine.z_of_level(compression.level))
        row = int(np.argmin(np.abs(z - z_disc)))
        ry = rng.uniform(1.5, 3.0)
        t2_disc, t1_disc = TISSUE["annulus"]
        spots.append(Spot("disc_bulge", z_disc, rng.uniform(3.0, 6.0), rng.uniform(-2.0, 2.0),
                          float(cord.radius_y[row]) + 0.3 + ry, rng.uniform(4.0, 8.0), ry,
                          t2_disc, t1_disc, profile=3.0))
    layers = [_spot_layer(spot, cord, geometry, z) for spot in spots]
    return [layer for layer in layers if layer is not None]


def _spot_layer(spot: Spot, cord: CordModel, geometry: AcquisitionGeometry, z: np.ndarray) -> Layer | None:
    """The spot on the in-plane grid: its radii shrink along the cord as a superellipse profile."""
    u = np.abs(z - spot.z_center) / spot.half_length
    scale = np.clip(1.0 - u ** spot.profile, 0.0, None) ** (1.0 / spot.profile)
    y = geometry.y_centers()[:, None]
    half = superellipse_half((spot.radius_x * scale)[None], (spot.radius_y * scale)[None],
                             y - (cord.center_y + spot.offset_y)[None])
    return make_layer(spot.name, (cord.center_x + spot.offset_x)[None], half, spot.t2, spot.t1)
