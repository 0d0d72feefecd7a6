"""Vertebral levels of a lesion: exact from SCT's label maps, or estimated from its length.

SCT's vertebral label maps (``sct_label_vertebrae``'s ``<stem>_seg_labeled.nii.gz``, or
``PAM50_levels.nii.gz`` warped by ``sct_warp_template``) give each cord voxel the number of its
vertebral level: 1 = C1 ... 7 = C7, 8 = T1 ... 19 = T12, 20 = L1 ... 24 = L5, 25 = S1 ... 29 = S5,
30 = Co (0 = background).

Exact levels (:func:`levels_in_range`): the levels present in the label map in the axial slices
(canonical S-I indices) that the lesion spans, whether or not they overlap the lesion voxels
themselves (a lesion the cord mask misses still lies at those levels). The number of segments
spanned is then fractional: for each level, the share of its S-I extent in the label map that
the lesion's S-I range covers, summed (a lesion over the whole of C3 and half of C4 spans 1.5).

Estimate (:func:`estimate_segments`): without a label map the lesion's position along the spine is
unknown, so only the number of segments is estimated, as the S-I length divided by
:data:`SEGMENT_HEIGHT_MM`. The adult vertebral segment (vertebral body plus disc) is about 18 mm
in the cervical spine and 22-25 mm in the thoracic spine; 20 mm is used everywhere. The
estimate is what matters for "longitudinally extensive" lesions (>= 3 segments, a criterion of
NMOSD), and it is always marked as estimated.
"""

from __future__ import annotations

import numpy as np

#: Height of one vertebral segment used by the estimate, in mm (see the module documentation).
SEGMENT_HEIGHT_MM = 20.0

_REGIONS = (("C", 1, 7), ("T", 8, 19), ("L", 20, 24), ("S", 25, 29))


def level_name(value: int) -> str:
    """Name of an SCT vertebral label value: 1 -> ``"C1"``, 8 -> ``"T1"``, 20 -> ``"L1"``, 30 -> ``"Co"``.

    Values outside SCT's convention are named ``"level<N>"`` rather than refused.
    """
    value = int(value)
    for prefix, first, last in _REGIONS:
        if first <= value <= last:
            return f"{prefix}{value - first + 1}"
    if value == 30:
        return "Co"
    return f"level{value}"


def level_presence(vertebral_labels: np.ndarray) -> dict[int, np.ndarray]:
    """For each level in a label map, a bool array over the S-I index: where the level appears.

    Non-integer values are rounded; values <= 0 are background.
    """
    labels = np.asarray(vertebral_labels)
    if labels.ndim != 3:
        raise ValueError(f"vertebral labels must be 3D, got shape {labels.shape}")
    xs, ys, zs = np.nonzero(labels >= 0.5)
    values = np.rint(labels[xs, ys, zs]).astype(np.int64)
    table = np.zeros((int(values.max()) + 1 if values.size else 1, labels.shape[2]), dtype=bool)
    table[values, zs] = True
    presence = {int(value): table[value] for value in np.flatnonzero(table.any(axis=1))}
    return presence


def levels_in_range(
    presence: dict[int, np.ndarray], z_start: int, z_stop: int
) -> tuple[tuple[str, ...], float]:
    """Levels present in S-I indices ``[z_start, z_stop)``, superior first, and segments spanned.

    Returns ``((), 0.0)`` when no level of the map lies in that range.
    """
    names = []
    segments = 0.0
    # SCT numbers levels from superior (C1 = 1) to inferior: ascending values, superior first
    for value in sorted(presence):
        where = presence[value]
        covered = int(where[z_start:z_stop].sum())
        if covered:
            names.append(level_name(value))
            segments += covered / int(where.sum())
    return tuple(names), segments


def estimate_segments(length_mm: float) -> float:
    """Estimated number of vertebral segments spanned by a lesion ``length_mm`` long (S-I)."""
    return float(length_mm) / SEGMENT_HEIGHT_MM
