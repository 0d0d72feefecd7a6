"""Acquisition geometry of a clinical sagittal T2w spine series.

Shape convention (used by :func:`sct_lesion_classify.phantom.generate_subject`): ``shape`` is the
*canonical* array shape ``(n_sagittal_slices, n_anterior_posterior, n_superior_inferior)``, that is
``(RL, AP, SI)``, so that ``subject.t2w.shape == shape``. The command line's ``--shape APxSIxRL``
(``512x512x15``) is the same three numbers in the order a radiographer reads them.

Without a shape, the geometry is sampled as clinical protocols are: 11-19 sagittal slices of
3-4 mm (gap 0-10%), square in-plane pixels of 0.5-0.8 mm, a superior-inferior field of view of
240-320 mm and an anterior-posterior one of 60-100% of it. With a shape, the field of view is still
sampled in 240-320 mm and the pixel size follows from it, so the anatomy keeps its real size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Storage orientations of sagittal series met in practice (nibabel "towards" axis codes; SCT
#: names them the other way round, e.g. ("P", "I", "R") is SCT's "ASL"). One is drawn per subject.
STORAGE_ORIENTATIONS: tuple[tuple[str, str, str], ...] = (
    ("P", "I", "R"), ("A", "S", "R"), ("P", "I", "L"), ("A", "I", "R"), ("P", "S", "L"),
    ("A", "S", "L"), ("L", "A", "S"), ("R", "A", "S"), ("L", "P", "S"), ("S", "P", "R"),
    ("I", "P", "L"), ("R", "P", "I"),
)


@dataclass(frozen=True)
class AcquisitionGeometry:
    """Sampled acquisition parameters, in the phantom's anatomical frame (mm).

    The anatomical frame has x to the subject's right, y anterior, z superior; z = 0 is the top of
    C1 and y = 0 the mean anterior-posterior position of the cord in the field of view.

    Attributes
    ----------
    shape
        Canonical (RL, AP, SI) array shape.
    pixel_mm
        In-plane (AP and SI) pixel size.
    slice_spacing_mm, slice_thickness_mm
        Distance between sagittal slice centres and their thickness (spacing >= thickness).
    x_first_mm, y_first_mm, z_first_mm
        Anatomical position of the centre of voxel (0, 0, 0).
    scanner_offset_mm
        Translation from the anatomical frame to the scanner's world frame.
    storage_axcodes
        Orientation the volume is stored in on disk.
    """

    shape: tuple[int, int, int]
    pixel_mm: float
    slice_spacing_mm: float
    slice_thickness_mm: float
    x_first_mm: float
    y_first_mm: float
    z_first_mm: float
    scanner_offset_mm: tuple[float, float, float]
    storage_axcodes: tuple[str, str, str]

    @property
    def zooms_mm(self) -> tuple[float, float, float]:
        """Voxel size along the canonical axes (RL, AP, SI)."""
        return (self.slice_spacing_mm, self.pixel_mm, self.pixel_mm)

    @property
    def fov_si_mm(self) -> float:
        return self.shape[2] * self.pixel_mm

    @property
    def fov_ap_mm(self) -> float:
        return self.shape[1] * self.pixel_mm

    def x_centers(self) -> np.ndarray:
        return (self.x_first_mm + self.slice_spacing_mm * np.arange(self.shape[0])).astype(np.float32)

    def y_centers(self) -> np.ndarray:
        return (self.y_first_mm + self.pixel_mm * np.arange(self.shape[1])).astype(np.float32)

    def z_centers(self) -> np.ndarray:
        return (self.z_first_mm + self.pixel_mm * np.arange(self.shape[2])).astype(np.float32)

    def affine(self) -> np.ndarray:
        """Canonical (RAS+) voxel-to-world affine, in mm."""
        affine = np.diag([self.slice_spacing_mm, self.pixel_mm, self.pixel_mm, 1.0])
        affine[:3, 3] = np.array([self.x_first_mm, self.y_first_mm, self.z_first_mm]) + np.array(
            self.scanner_offset_mm)
        return affine


@dataclass(frozen=True)
class AcquisitionPlan:
    """The part of the geometry sampled before the anatomy places the field of view."""

    shape: tuple[int, int, int]
    pixel_mm: float
    slice_spacing_mm: float
    slice_thickness_mm: float
    storage_axcodes: tuple[str, str, str]


def sample_plan(rng: np.random.Generator, shape: tuple[int, int, int] | None = None) -> AcquisitionPlan:
    """Sample slice count, thickness, pixel size and field of view (see the module docstring)."""
    thickness = float(rng.uniform(3.0, 4.0))
    spacing = thickness * float(rng.choice([1.0, 1.0, 1.05, 1.1]))
    fov_si = float(rng.uniform(240.0, 320.0))
    if shape is None:
        pixel = float(rng.uniform(0.5, 0.8))
        n_si = int(round(fov_si / pixel))
        n_ap = int(round(n_si * rng.uniform(0.6, 1.0)))
        n_rl = int(rng.integers(11, 20))
        shape = (n_rl, n_ap, n_si)
    else:
        shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
        if len(shape) != 3 or min(shape) < 2:
            raise ValueError(f"shape must be three sizes >= 2 (RL, AP, SI), got {shape}")
        pixel = fov_si / shape[2]
    axcodes = STORAGE_ORIENTATIONS[int(rng.integers(len(STORAGE_ORIENTATIONS)))]
    return AcquisitionPlan(shape, pixel, spacing, thickness, axcodes)  # type: ignore[arg-type]


def place(plan: AcquisitionPlan, rng: np.random.Generator, *, z_top_mm: float,
          x_center_mm: float) -> AcquisitionGeometry:
    """Place the field of view: its top at ``z_top_mm``, the slab centred near ``x_center_mm``.

    The cord lies at 25-45% of the anterior-posterior field of view from its posterior edge.
    """
    n_rl, n_ap, n_si = plan.shape
    y_first = -float(rng.uniform(0.25, 0.45)) * n_ap * plan.pixel_mm
    z_first = z_top_mm - (n_si - 1) * plan.pixel_mm
    x_first = x_center_mm - (n_rl - 1) / 2 * plan.slice_spacing_mm
    offset = (float(rng.uniform(-5, 5)), float(rng.uniform(-30, 30)), float(rng.uniform(-80, 80)))
    return AcquisitionGeometry(plan.shape, plan.pixel_mm, plan.slice_spacing_mm,
                               plan.slice_thickness_mm, x_first, y_first, z_first, offset,
                               plan.storage_axcodes)
