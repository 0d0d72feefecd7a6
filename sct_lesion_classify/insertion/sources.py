"""The healthy scans lesions are inserted into: one image and its cord mask, or a BIDS dataset.

In a BIDS dataset of controls, every subject with a T2w image and a cord mask
(``derivatives/labels/sub-XX/anat/sub-XX_T2w_seg-manual.nii.gz``, as ``io.bids`` finds them) is a
source; a subject without a cord mask is skipped with a warning. Inputs are only read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.insertion.cord_frame import CordFrame, measure_cord_frame
from sct_lesion_classify.io import bids
from sct_lesion_classify.io.image import Image, load_image, load_mask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthyScan:
    """Where one healthy scan and its cord mask are.

    Attributes
    ----------
    label
        The BIDS participant_id, or the image's file name without extension.
    """

    label: str
    t2w: Path
    cord_mask: Path


@dataclass(frozen=True)
class LoadedScan:
    """A healthy scan read and checked: canonical image, cord mask and the cord's frame."""

    scan: HealthyScan
    image: Image = field(repr=False)
    cord_mask: np.ndarray = field(repr=False)
    frame: CordFrame = field(repr=False)


def scan_from_files(t2w: str | Path, cord_mask: str | Path) -> HealthyScan:
    """A source given as an image and its cord mask (checked when loaded)."""
    t2w = Path(t2w)
    label = t2w.name[:-len(".nii.gz")] if t2w.name.endswith(".nii.gz") else t2w.stem
    return HealthyScan(label, t2w, Path(cord_mask))


def scans_from_bids(root: str | Path) -> list[HealthyScan]:
    """The sources of a BIDS dataset of controls (module docstring).

    Raises
    ------
    InputError
        Not a dataset folder, an invalid participants.tsv, or no subject with a T2w image and a
        cord mask.
    """
    subjects = bids.discover_subjects(Path(root))
    unmasked = [s.participant_id for s in subjects if s.cord_mask is None]
    if unmasked:
        logger.warning("%d subject(s) without a cord mask skipped: %s", len(unmasked), _listed(unmasked))
    scans = [HealthyScan(s.participant_id, s.t2w, s.cord_mask) for s in subjects if s.cord_mask is not None]
    labelled = [s.participant_id for s in subjects
                if s.cord_mask is not None and (s.lesion_mask is not None or s.diagnosis is not None)]
    if labelled:
        logger.warning("%d subject(s) have a lesion mask or a diagnosis, yet are used as healthy "
                       "controls: %s", len(labelled), _listed(labelled))
    if not scans:
        raise InputError(f"{root}: no subject with both a T2w image and a cord mask "
                         f"({bids.LABELS_DIR}/sub-XX/anat/sub-XX_T2w_seg-manual.nii.gz)")
    return scans


def _listed(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def load_scan(scan: HealthyScan) -> LoadedScan:
    """Read and check one source.

    Raises
    ------
    InputError
        Unreadable or invalid image or mask (``io.image``), a mask on another grid, or an empty
        cord mask.
    """
    image = load_image(scan.t2w, what="T2w image")
    cord_mask, warnings = load_mask(scan.cord_mask, image.grid, what="cord mask")
    for warning in warnings:
        logger.warning(warning)
    if not cord_mask.any():
        raise InputError(f"{scan.cord_mask}: cord mask is empty (no voxel > 0); a lesion is painted "
                         "inside the cord mask, so it needs one")
    return LoadedScan(scan, image, cord_mask, measure_cord_frame(cord_mask, image.zooms))
