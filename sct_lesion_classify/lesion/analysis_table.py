"""The lesion table in ``sct_analyze_lesion``'s format: ``<stem>_lesion_seg_analysis.csv``.

One row per lesion, the lesions and their numbers those of :mod:`.morphometry`
(:func:`~.morphometry.label_lesions`: 26-connected components numbered 1..n by decreasing
volume; the labelled map written beside the table, ``<stem>_lesion_seg_label.nii.gz``, holds
the same numbers). Plain CSV written with the :mod:`csv` module (SCT writes an ``.xlsx``
workbook; its users asked for CSV, SCT issue 3691): a script that reads the ``measures`` sheet
of ``sct_analyze_lesion`` by column name reads this table the same way.

Columns, in this order (:func:`table_columns`):

1. SCT 7's measures, with its names, units and definitions (``scripts/sct_analyze_lesion.py``),
   computed in the canonical orientation (axis 0 R-L, axis 1 A-P, axis 2 S-I; an axial slice is
   one S-I index ``z``; ``dx, dy, dz`` the voxel size in mm):

   - ``label``: the lesion's number (the value of its voxels in the label map);
   - ``volume [mm3]``: voxel count x ``dx dy dz`` (needs no cord mask);
   - ``length [mm]``: sum over the lesion's axial slices of ``dz / cos(angle_3d(z))``;
   - ``width [mm]``: largest, over the lesion's axial slices, A-P extent of the lesion in that
     slice (``(y_max - y_min + 1) dy``, all sagittal slices together) x ``cos(angle_sagittal(z))``;
   - ``max_equivalent_diameter [mm]``: ``2 sqrt(A / pi)`` with ``A`` the largest, over axial
     slices, lesion area x ``cos(angle_3d(z))``;
   - ``max_axial_damage_ratio []``: largest, over the lesion's axial slices, lesion area / cord
     area (the cord mask alone, as SCT; :mod:`.morphometry`'s ratio of the same name divides
     by the cord united with the lesions, so the two differ where a lesion leaves the cord mask).
     Slices where the cord mask is empty are skipped (SCT divides by zero there);
   - ``mean_<image>``, ``std_<image>``: mean and standard deviation (population) of the T2w image
     over the lesion's voxels where the image is not 0, ``<image>`` being the file name of
     ``-i`` without ``.nii.gz`` (as SCT names them after its ``-i``).

   The angles are those of the cord's centre line, fitted as SCT's ``get_centerline`` fits it
   by default (:func:`cord_angles`). **Without a cord mask** SCT computes only the volume, and
   so does this table: ``length``, ``width``, ``max_equivalent_diameter`` and
   ``max_axial_damage_ratio`` are empty cells. Differences from SCT: lesions are 26-connected
   components numbered by decreasing volume (SCT: ``skimage.measure.label(connectivity=2)``,
   18-connected, numbered in scan order), and SCT's midsagittal and tissue-bridge columns
   (``interpolated_midsagittal_slice``, ``..._bridge_width [mm]``...) are not written.
2. Our own measures, from :class:`~.morphometry.LesionMeasure` (:data:`OWN_COLUMNS`):
   ``vertebral_levels`` (``;``-separated, empty when estimated), ``levels_estimated``
   (``True``/``False``), ``n_segments_spanned``, ``position`` (central | eccentric),
   ``eccentricity_ratio``, ``intensity_ratio``.
3. The subject's columns, the same on every row (the caller's: the diagnosis probabilities).

Missing values are empty cells. An empty lesion mask gives the header alone.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from sct_lesion_classify.io.atomic import write_text_atomic
from sct_lesion_classify.lesion.morphometry import LesionMeasure

#: SCT's measure columns after ``label`` (``sct_analyze_lesion``'s ``measure_keys``), in its order.
SCT_MEASURES = ("volume [mm3]", "length [mm]", "width [mm]", "max_equivalent_diameter [mm]",
                "max_axial_damage_ratio []")
#: Our own per-lesion columns, after SCT's.
OWN_COLUMNS = ("vertebral_levels", "levels_estimated", "n_segments_spanned", "position",
               "eccentricity_ratio", "intensity_ratio")
#: SCT's centre-line smoothing (``ParamCenterline().smooth``, B-spline fitting).
CENTERLINE_SMOOTH = 20.0
#: Decimals written for the measures.
DIGITS = 6


def image_columns(image_name: str) -> tuple[str, str]:
    """``(mean_<image_name>, std_<image_name>)``."""
    return f"mean_{image_name}", f"std_{image_name}"


def table_columns(image_name: str, subject_columns: Sequence[str] = ()) -> tuple[str, ...]:
    """The header of a table whose image is ``image_name`` (see the module documentation)."""
    return ("label", *SCT_MEASURES, *image_columns(image_name), *OWN_COLUMNS, *subject_columns)


@dataclass(frozen=True)
class SctMeasures:
    """SCT's measures of one lesion (None: not computed, e.g. no cord mask)."""

    label: int
    volume_mm3: float
    length_mm: float | None
    width_mm: float | None
    max_equivalent_diameter_mm: float | None
    max_axial_damage_ratio: float | None
    mean_intensity: float | None
    std_intensity: float | None

    def cells(self) -> tuple[str, ...]:
        """The row's cells from ``label`` to ``std_<image>``."""
        return (str(self.label), *(number_cell(v) for v in (
            self.volume_mm3, self.length_mm, self.width_mm, self.max_equivalent_diameter_mm,
            self.max_axial_damage_ratio, self.mean_intensity, self.std_intensity)))


@dataclass(frozen=True)
class LesionTable:
    """The table of one image: SCT's measures and ours per lesion, and the subject's columns.

    Attributes
    ----------
    image_name
        Names the ``mean_`` / ``std_`` columns.
    measures, lesions
        One :class:`SctMeasures` and one :class:`~.morphometry.LesionMeasure` per lesion, in
        label order (the same labels).
    subject_values
        ``(column, cell)`` pairs written on every row.
    """

    image_name: str
    measures: tuple[SctMeasures, ...]
    lesions: tuple[LesionMeasure, ...]
    subject_values: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if [m.label for m in self.measures] != [lesion.label for lesion in self.lesions]:
            raise ValueError("SCT measures and morphometry must list the same lesions in the same order")

    @property
    def columns(self) -> tuple[str, ...]:
        """The header."""
        return table_columns(self.image_name, [name for name, _ in self.subject_values])

    def rows(self) -> list[tuple[str, ...]]:
        """Every row's cells, in :attr:`columns` order."""
        subject = tuple(cell for _, cell in self.subject_values)
        return [(*measures.cells(), *_own_cells(lesion), *subject)
                for measures, lesion in zip(self.measures, self.lesions)]

    def to_csv(self) -> str:
        """The CSV text (header, then one line per lesion)."""
        return format_csv(self.columns, self.rows())

    def write(self, path: str | os.PathLike) -> None:
        """Write the CSV atomically."""
        write_text_atomic(path, self.to_csv())


def number_cell(value: float | None, digits: int = DIGITS) -> str:
    """A number rounded to ``digits`` decimals; empty for None or a value that is not finite."""
    if value is None or not math.isfinite(float(value)):
        return ""
    return repr(round(float(value), digits))


def _own_cells(lesion: LesionMeasure) -> tuple[str, ...]:
    return (
        ";".join(lesion.vertebral_levels) if lesion.vertebral_levels else "",
        str(bool(lesion.levels_estimated)),
        number_cell(lesion.n_segments_spanned, 2),
        lesion.position or "",
        number_cell(lesion.eccentricity_ratio),
        number_cell(lesion.intensity_ratio),
    )


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """CSV text of a header and rows (``\\n`` line ends, minimal quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def read_lesion_table(path: str | os.PathLike) -> tuple[str, tuple[str, ...], list[tuple[str, ...]]]:
    """``(image_name, columns, rows)`` of a table this module wrote.

    Raises
    ------
    ValueError
        The header is not that of a lesion table (:func:`table_columns`), or a row has another
        number of cells.
    OSError
        The file cannot be read.
    """
    reader = csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8")))
    header = tuple(next(reader, ()))
    start = 1 + len(SCT_MEASURES)
    names = header[start:start + 2]
    image_name = names[0][len("mean_"):] if names and names[0].startswith("mean_") else ""
    expected = table_columns(image_name)
    if not image_name or header[:len(expected)] != expected:
        raise ValueError(f"{path}: not a lesion table (header {list(header)})")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise ValueError(f"{path}: line {line} has {len(cells)} cells, expected {len(header)}")
        rows.append(tuple(cells))
    return image_name, header, rows


# --------------------------------------------------------------------------------- the measures
def cord_angles(cord_mask: np.ndarray, zooms_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per axial slice, the cord centre line's angle to the S-I axis: ``(angle_3d, angle_sagittal)``.

    As SCT's ``get_centerline(ParamCenterline(minmax=False))``: the centre of mass of the cord
    mask in each axial slice that has cord, fitted along S-I by a smoothing cubic B-spline
    (``scipy.interpolate.splrep``, smoothing ``(n_points / n_slices)^2 x 20 x dz``; linear below 4
    points) and differentiated at every slice of the image. ``angle_3d`` is the angle between the
    tangent ``(x' dx, y' dy, dz)`` and the S-I axis; ``angle_sagittal`` the same for the tangent
    projected on the sagittal plane, ``(0, y' dy, dz)``. A cord mask with fewer than two slices
    gives zero angles.
    """
    from scipy import interpolate

    cord = np.asarray(cord_mask, dtype=bool)
    dx, dy, dz = (float(z) for z in zooms_mm)
    n_z = cord.shape[2]
    xs, ys, zs = np.nonzero(cord)
    counts = np.bincount(zs, minlength=n_z)
    slices = np.flatnonzero(counts)
    if slices.size < 2:
        return np.zeros(n_z), np.zeros(n_z)
    x_mean = np.bincount(zs, weights=xs, minlength=n_z)[slices] / counts[slices]
    y_mean = np.bincount(zs, weights=ys, minlength=n_z)[slices] / counts[slices]
    degree = 3 if slices.size > 3 else 1
    smoothing = (slices.size / n_z) ** 2 * CENTERLINE_SMOOTH * dz
    every_slice = np.arange(n_z, dtype=np.float64)
    slope_x = interpolate.splev(every_slice, interpolate.splrep(slices, x_mean, s=smoothing, k=degree), der=1)
    slope_y = interpolate.splev(every_slice, interpolate.splrep(slices, y_mean, s=smoothing, k=degree), der=1)
    tx, ty = np.asarray(slope_x) * dx, np.asarray(slope_y) * dy
    angle_3d = np.arccos(np.clip(dz / np.sqrt(tx ** 2 + ty ** 2 + dz ** 2), -1.0, 1.0))
    angle_sagittal = np.arccos(np.clip(dz / np.sqrt(ty ** 2 + dz ** 2), -1.0, 1.0))
    return angle_3d, angle_sagittal


def sct_measures(labels: np.ndarray, zooms_mm: Sequence[float], *, image: np.ndarray | None = None,
                 cord_mask: np.ndarray | None = None) -> tuple[SctMeasures, ...]:
    """SCT's measures of every lesion of a label map (canonical orientation, 0 = background).

    Parameters
    ----------
    labels
        Lesion labels 1..n (:func:`~.morphometry.label_lesions`).
    zooms_mm
        Voxel size in mm along the canonical axes.
    image
        The T2w intensities on the same grid (``mean_`` / ``std_`` columns), if any.
    cord_mask
        The cord mask on the same grid; without it only the volume is measured.
    """
    labels = np.asarray(labels)
    dx, dy, dz = (float(z) for z in zooms_mm)
    pixel_mm2 = dx * dy
    cord = None if cord_mask is None else np.asarray(cord_mask, dtype=bool)
    if cord is not None:
        angle_3d, angle_sagittal = cord_angles(cord, zooms_mm)
        cord_area = cord.sum(axis=(0, 1))  # voxels per axial slice
    values = None if image is None else np.asarray(image)
    measures = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        local = labels[box] == index
        area = local.sum(axis=(0, 1))  # voxels per axial slice of the box
        z = np.flatnonzero(area) + box[2].start  # the lesion's axial slices
        length = width = diameter = damage = None
        if cord is not None:
            length = float(np.sum(dz / np.cos(angle_3d[z])))
            profile = local.any(axis=0)[:, area > 0]  # (A-P, the lesion's axial slices)
            first = np.argmax(profile, axis=0)
            last = profile.shape[0] - 1 - np.argmax(profile[::-1], axis=0)
            width = float(np.max((last - first + 1) * dy * np.cos(angle_sagittal[z])))
            diameter = 2.0 * math.sqrt(float(np.max(area[area > 0] * np.cos(angle_3d[z]))) * pixel_mm2 / math.pi)
            with_cord = cord_area[z] > 0
            if with_cord.any():
                damage = float(np.max(area[area > 0][with_cord] / cord_area[z][with_cord]))
        mean = std = None
        if values is not None:
            inside = values[box][local]
            inside = inside[inside != 0]
            if inside.size:
                mean = float(inside.mean(dtype=np.float64))
                std = float(inside.std(dtype=np.float64))
        measures.append(SctMeasures(label=index, volume_mm3=int(area.sum()) * pixel_mm2 * dz, length_mm=length,
                                    width_mm=width, max_equivalent_diameter_mm=diameter,
                                    max_axial_damage_ratio=damage, mean_intensity=mean, std_intensity=std))
    return tuple(measures)


def build_table(labels: np.ndarray, lesions: Sequence[LesionMeasure], zooms_mm: Sequence[float], *,
                image_name: str, image: np.ndarray | None = None, cord_mask: np.ndarray | None = None,
                subject_values: Mapping[str, str] | None = None) -> LesionTable:
    """The table of one image: SCT's measures of ``labels`` beside ``lesions`` (same labels)."""
    return LesionTable(image_name=image_name,
                       measures=sct_measures(labels, zooms_mm, image=image, cord_mask=cord_mask),
                       lesions=tuple(lesions), subject_values=tuple((subject_values or {}).items()))


def label_map_dtype(count: int) -> type:
    """The smallest unsigned type that holds labels 0..count (uint8, uint16, else uint32)."""
    if count <= np.iinfo(np.uint8).max:
        return np.uint8
    if count <= np.iinfo(np.uint16).max:
        return np.uint16
    return np.uint32
