"""The names of every file the pipeline writes for an input image: the one place they are spelled.

For ``-i sub-01_T2w.nii.gz`` (stem ``sub-01_T2w``)::

    sub-01_T2w_lesion_seg.nii.gz       lesion mask (sct_deepseg_imlesion, or sct_classify_lesion
    sub-01_T2w_lesion_seg.json         without -lesion) and its BIDS sidecar
    sub-01_T2w_seg.nii.gz              cord mask (-save-cord 1; also SCT's, -cord-method sct)
    sub-01_T2w_cropbox.nii.gz          crop box (-save-cord 1)
    sub-01_T2w_diagnosis.json          diagnosis JSON (sct_classify_lesion)
    sub-01_T2w_lesion_seg_analysis.csv lesion table, sct_analyze_lesion's columns (sct_classify_lesion)
    sub-01_T2w_lesion_seg_label.nii.gz the lesions numbered as in the table (sct_classify_lesion)
    sub-01_T2w_gradcam-<role>.nii.gz   Grad-CAM map of one classifier (-gradcam 1)

The folder is the caller's (beside the input, beside ``-o``, or a batch's derivative folder);
a NIfTI output's sidecar is its name with ``.json`` (:func:`sidecar_path`). The lesion table and
the label map are named as ``sct_analyze_lesion -m <stem>_lesion_seg.nii.gz`` names its
``_analysis`` workbook and ``_label`` map, and lie beside the diagnosis JSON
(:func:`lesion_table_outputs`).

The lesion mask is named as SCT 7's lesion tasks name theirs (``sct_deepseg lesion_ms`` ->
``<stem>_lesion_seg.nii.gz``). Earlier versions of this package wrote ``<stem>_lesionseg`` (the
name of SCT's deprecated ``sct_deepseg_lesion``); :attr:`OutputNames.legacy_lesion_outputs`
spells it, for the batch's resume check only (nothing is written under it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NIFTI_SUFFIXES = (".nii.gz", ".nii")
NIFTI = ".nii.gz"

LESION_MASK_SUFFIX = "_lesion_seg"
LEGACY_LESION_MASK_SUFFIX = "_lesionseg"  # earlier versions' name; only read (batch resume)
CORD_MASK_SUFFIX = "_seg"
CROP_BOX_SUFFIX = "_cropbox"
DIAGNOSIS_SUFFIX = "_diagnosis"
GRADCAM_SUFFIX = "_gradcam-"
LESION_TABLE_SUFFIX = f"{LESION_MASK_SUFFIX}_analysis"  # sct_analyze_lesion's <mask stem>_analysis
LESION_LABELS_SUFFIX = f"{LESION_MASK_SUFFIX}_label"  # and its <mask stem>_label


def output_stem(path: str | Path) -> str:
    """File name without ``.nii.gz`` / ``.nii`` / ``.json`` (``sub-01_T2w.nii.gz`` -> ``sub-01_T2w``)."""
    name = Path(path).name
    for suffix in (*NIFTI_SUFFIXES, ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def sidecar_path(nifti_path: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI output: ``x.nii.gz`` -> ``x.json``."""
    nifti_path = Path(nifti_path)
    return nifti_path.with_name(output_stem(nifti_path) + ".json")


@dataclass(frozen=True)
class OutputNames:
    """The file names of the outputs of one input image (names only; the caller picks the folder)."""

    stem: str

    @classmethod
    def of(cls, image_path: str | Path) -> "OutputNames":
        """The names for the input image ``image_path``."""
        return cls(output_stem(image_path))

    @property
    def lesion_mask(self) -> str:
        """``<stem>_lesion_seg.nii.gz``."""
        return f"{self.stem}{LESION_MASK_SUFFIX}{NIFTI}"

    @property
    def lesion_sidecar(self) -> str:
        """``<stem>_lesion_seg.json``."""
        return sidecar_path(self.lesion_mask).name

    @property
    def legacy_lesion_outputs(self) -> tuple[str, str]:
        """``(<stem>_lesionseg.nii.gz, <stem>_lesionseg.json)``: the mask and sidecar in earlier versions."""
        mask = f"{self.stem}{LEGACY_LESION_MASK_SUFFIX}{NIFTI}"
        return mask, sidecar_path(mask).name

    @property
    def cord_mask(self) -> str:
        """``<stem>_seg.nii.gz``."""
        return f"{self.stem}{CORD_MASK_SUFFIX}{NIFTI}"

    @property
    def crop_box(self) -> str:
        """``<stem>_cropbox.nii.gz``."""
        return f"{self.stem}{CROP_BOX_SUFFIX}{NIFTI}"

    @property
    def diagnosis(self) -> str:
        """``<stem>_diagnosis.json``."""
        return f"{self.stem}{DIAGNOSIS_SUFFIX}.json"

    @property
    def lesion_analysis(self) -> tuple[str, str]:
        """``(<stem>_lesion_seg_analysis.csv, <stem>_lesion_seg_label.nii.gz)``: the lesion table, its label map."""
        return f"{self.stem}{LESION_TABLE_SUFFIX}.csv", f"{self.stem}{LESION_LABELS_SUFFIX}{NIFTI}"

    def gradcam(self, role: str) -> str:
        """``<stem>_gradcam-<role>.nii.gz``."""
        return f"{self.stem}{GRADCAM_SUFFIX}{role}{NIFTI}"


def gradcam_output(json_path: str | Path, image_path: str | Path, role: str) -> Path:
    """``<folder of the diagnosis JSON>/<stem of -i>_gradcam-<role>.nii.gz`` (``-gradcam 1``)."""
    return Path(json_path).parent / OutputNames.of(image_path).gradcam(role)


def lesion_table_outputs(json_path: str | Path, image_path: str | Path) -> tuple[Path, Path]:
    """``(<stem>_lesion_seg_analysis.csv, <stem>_lesion_seg_label.nii.gz)`` in the diagnosis JSON's folder."""
    table, labels = OutputNames.of(image_path).lesion_analysis
    folder = Path(json_path).parent
    return folder / table, folder / labels
