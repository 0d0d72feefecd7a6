"""The options of a run that every image of it shares: segmentation flags and the QC report.

Built once, by the command line (``cli.common``) or by the cohort runner, and held by the
requests (``SegmentationRequest``, the batch's ``BatchSettings``). Standard library only, so the
batch's worker module can hold them before numerical libraries load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sct_lesion_classify.errors import InputError

CORD_METHODS = ("auto", "builtin", "sct")


@dataclass(frozen=True)
class SegmentationOptions:
    """The flags of the cascaded lesion segmentation (``sct_deepseg_imlesion``).

    ``None`` for a postprocessing option means "the model card's default".

    Attributes
    ----------
    cord_method
        How the cord is found without a cord mask: one of :data:`CORD_METHODS` (``-cord-method``).
    save_cord
        Also write the cord mask and the crop box (``-save-cord 1``).
    crop
        Segment the box around the cord (``False``: ``-no-crop``, the whole field of view).
    threshold, largest, fill_holes, remove_small
        Postprocessing (``-thr``, ``-largest``, ``-fill-holes``, ``-remove-small``).
    remove_temp
        Remove the temporary folder of ``-cord-method sct`` (``-r``).
    """

    cord_method: str = "auto"
    save_cord: bool = False
    crop: bool = True
    threshold: float | None = None
    largest: bool | None = None
    fill_holes: bool | None = None
    remove_small: tuple[str, ...] | None = None
    remove_temp: bool = True

    def __post_init__(self) -> None:
        if self.cord_method not in CORD_METHODS:
            raise InputError(f"-cord-method must be one of {CORD_METHODS}, got {self.cord_method!r}")
        if self.remove_small is not None:
            object.__setattr__(self, "remove_small", tuple(self.remove_small))

    def needs_builtin_cord(self, *, cord_mask_given: bool) -> bool:
        """Whether the bundled cord localizer runs: no cord mask, not SCT's method, and a crop or
        ``-save-cord`` that needs the cord."""
        if cord_mask_given or self.cord_method == "sct":
            return False
        return self.crop or self.save_cord


@dataclass(frozen=True)
class QcOptions:
    """Where the QC report goes (``-qc``; None: no report) and how its entries are labelled."""

    folder: Path | None = None
    dataset: str | None = None
    subject: str | None = None
