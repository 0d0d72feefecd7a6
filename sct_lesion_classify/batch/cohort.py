"""The subjects of a cohort, where their outputs go, and whether those outputs are complete.

Outputs of ``sct_lesion_classify batch`` form a BIDS derivative dataset (default
``<BIDS>/derivatives/sct_lesion_classify/``)::

    dataset_description.json                       (DatasetType derivative, GeneratedBy)
    diagnoses.csv                                  (the cohort table, batch.table)
    lesion_seg_analysis.csv                        (every subject's lesion table, batch.lesion_table)
    sub-XX/anat/sub-XX_T2w_lesion_seg.nii.gz       (automatic lesion mask, native grid)
    sub-XX/anat/sub-XX_T2w_lesion_seg.json         (its sidecar)
    sub-XX/anat/sub-XX_T2w_lesion_seg_analysis.csv (lesion table, sct_analyze_lesion's columns)
    sub-XX/anat/sub-XX_T2w_lesion_seg_label.nii.gz (its lesions numbered, native grid)
    sub-XX/anat/sub-XX_T2w_diagnosis.json          (the diagnosis JSON, written last)

A subject is *complete* when :func:`check_complete` accepts its outputs: the diagnosis JSON
parses and validates against the schema, was computed from the current T2w file (same sha256)
with the same model packages (names and sha256) and the same kind of lesion mask, and the lesion
mask it names loads in full with the shape of the T2w image. Anything else means "redo".
:func:`check_complete_any_name` also accepts the outputs of earlier versions, whose automatic
mask and sidecar were named ``_lesionseg`` (``sub-XX_T2w_lesionseg.nii.gz`` + ``.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from sct_lesion_classify import PROJECT_URL, __version__
from sct_lesion_classify.io.bids import BidsSubject, write_dataset_description
from sct_lesion_classify.pipeline.outputs import OutputNames

if TYPE_CHECKING:
    from sct_lesion_classify.pipeline.models import ModelFingerprint

DERIVATIVES_NAME = "sct_lesion_classify"
TABLE_NAME = "diagnoses.csv"


def default_output_root(bids_root: str | os.PathLike) -> Path:
    """``<BIDS>/derivatives/sct_lesion_classify``."""
    return Path(bids_root) / "derivatives" / DERIVATIVES_NAME


def matches(participant_id: str, pattern: str) -> bool:
    """Whether ``participant_id`` matches a shell pattern, with or without its ``sub-`` prefix.

    ``matches("sub-012", "sub-01*")``, ``matches("sub-012", "01?")`` and
    ``matches("sub-012", "sub-012")`` are all true (case-sensitive, as BIDS labels are).
    """
    label = participant_id[4:] if participant_id.startswith("sub-") else participant_id
    return fnmatchcase(participant_id, pattern) or fnmatchcase(label, pattern)


def select_subjects(subjects: Iterable[BidsSubject], include: Sequence[str] = (),
                    exclude: Sequence[str] = (), *, include_regex: str | None = None,
                    exclude_regex: str | None = None) -> list[BidsSubject]:
    """Subjects matching any ``include`` pattern (all when none is given) and no ``exclude`` one.

    ``include_regex`` / ``exclude_regex`` filter as ``sct_run_batch -include / -exclude`` do: a
    regular expression searched in the subject's folder name (``re.search``, ``sub-01``). A
    subject is kept when it passes both kinds of filter.
    """
    import re

    chosen = []
    for subject in subjects:
        pid = subject.participant_id
        if include and not any(matches(pid, p) for p in include):
            continue
        if include_regex is not None and not re.search(include_regex, pid):
            continue
        if any(matches(pid, p) for p in exclude):
            continue
        if exclude_regex is not None and re.search(exclude_regex, pid):
            continue
        chosen.append(subject)
    return chosen


@dataclass(frozen=True)
class SubjectOutputs:
    """Where the outputs of one subject go."""

    folder: Path
    diagnosis_json: Path
    lesion_mask: Path
    sidecar: Path


def subject_outputs(output_root: str | os.PathLike, subject: BidsSubject) -> SubjectOutputs:
    """``<output root>/sub-XX/anat/<T2w stem>_{diagnosis.json,lesion_seg.nii.gz,lesion_seg.json}``."""
    folder = Path(output_root) / subject.participant_id / "anat"
    names = OutputNames.of(subject.t2w)
    return SubjectOutputs(folder=folder, diagnosis_json=folder / names.diagnosis,
                          lesion_mask=folder / names.lesion_mask, sidecar=folder / names.lesion_sidecar)


def legacy_subject_outputs(current: SubjectOutputs, subject: BidsSubject) -> SubjectOutputs:
    """The outputs as earlier versions named them: ``<T2w stem>_lesionseg.{nii.gz,json}``.

    ``current``: the subject's outputs under the current names (:func:`subject_outputs`). Read
    only, by :func:`check_complete_any_name`; nothing is written under these names.
    """
    mask, sidecar = OutputNames.of(subject.t2w).legacy_lesion_outputs
    return SubjectOutputs(folder=current.folder, diagnosis_json=current.diagnosis_json,
                          lesion_mask=current.folder / mask, sidecar=current.folder / sidecar)


def write_description(output_root: str | os.PathLike) -> None:
    """The derivative dataset's ``dataset_description.json`` (DatasetType, GeneratedBy with CodeURL)."""
    generated_by = [{"Name": "sct_lesion_classify", "Version": __version__,
                     "Description": "sct_lesion_classify batch: cascaded intramedullary lesion "
                                    "segmentation and differential diagnosis (research use only)",
                     "CodeURL": PROJECT_URL}]
    write_dataset_description(Path(output_root), "sct_lesion_classify: lesion masks and diagnoses",
                              generated_by, derivative=True)


def remove_stale_temporaries(folder: str | os.PathLike, names: Iterable[str]) -> int:
    """Remove the temporary files that an interrupted atomic write of ``names`` left in ``folder``.

    ``io.atomic`` writes ``.<name>.<random>.tmp[<suffix>]`` beside the destination and renames
    it; a run killed in between leaves it behind. Call only while no other process writes
    these files (the batch holds its lock). Returns how many files were removed.
    """
    folder = Path(folder)
    removed = 0
    for name in names:
        for stale in folder.glob(f".{name}.*.tmp*"):
            try:
                stale.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def display_path(path: str | os.PathLike, bids_root: str | os.PathLike) -> str:
    """``path`` relative to the BIDS folder when it lies inside it, else as it is."""
    path, root = Path(path), Path(bids_root)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def check_complete(subject: BidsSubject, outputs: SubjectOutputs, *, lesion_path: Path,
                   lesion_source: str, models: Sequence[ModelFingerprint]) -> tuple[dict | None, str]:
    """Whether the outputs of ``subject`` are complete and valid for this configuration.

    Parameters
    ----------
    lesion_path
        The lesion mask the diagnosis must be based on (the automatic one in the outputs, or the
        manual one with ``--use-manual-lesion``).
    lesion_source
        ``"automatic"`` or ``"user"``.
    models
        The packages the diagnosis must have been computed with, in order.

    Returns
    -------
    (document, "") when complete; (None, reason) otherwise.
    """
    document, reason = _read_diagnosis(outputs.diagnosis_json)
    if document is None:
        return None, reason
    reason = _input_problem(subject, document) or _outputs_problem(
        subject, document, outputs, lesion_path=lesion_path, lesion_source=lesion_source, models=models)
    return (None, reason) if reason else (document, "")


def check_complete_any_name(subject: BidsSubject, outputs: SubjectOutputs, *, lesion_path: Path,
                            lesion_source: str, models: Sequence[ModelFingerprint]
                            ) -> tuple[dict | None, str, Path]:
    """:func:`check_complete` for the current output names, then, for an automatic mask, the old ones.

    A subject processed by an earlier version has ``<stem>_lesionseg.nii.gz`` + ``.json`` and a
    diagnosis JSON naming that mask; those outputs are complete under the same rules. The
    diagnosis JSON is read and validated once; the old outputs are checked only when it names
    the old mask.

    Parameters
    ----------
    outputs
        The subject's outputs under the current names (:func:`subject_outputs`).

    Returns
    -------
    (document, "", accepted lesion mask) when complete; (None, reason, lesion_path) otherwise
    (the reason is the one of the current names).
    """
    document, reason = _read_diagnosis(outputs.diagnosis_json)
    if document is None:
        return None, reason, lesion_path
    reason = _input_problem(subject, document)
    if reason:
        return None, reason, lesion_path
    reason = _outputs_problem(subject, document, outputs, lesion_path=lesion_path,
                              lesion_source=lesion_source, models=models)
    if not reason:
        return document, "", lesion_path
    if lesion_source != "automatic" or lesion_path != outputs.lesion_mask:
        return None, reason, lesion_path
    legacy = legacy_subject_outputs(outputs, subject)
    if Path(document["lesion_mask"]["path"]).name != legacy.lesion_mask.name or _outputs_problem(
            subject, document, legacy, lesion_path=legacy.lesion_mask, lesion_source=lesion_source, models=models):
        return None, reason, lesion_path
    return document, "", legacy.lesion_mask


def _read_diagnosis(path: Path) -> tuple[dict | None, str]:
    """The diagnosis JSON at ``path``, parsed and valid against the schema; else (None, reason)."""
    from sct_lesion_classify.classify.document import validation_errors

    if not path.is_file():
        return None, "no diagnosis JSON"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"diagnosis JSON unreadable ({type(exc).__name__})"
    if not isinstance(document, dict):
        return None, "diagnosis JSON is not an object"
    problems = validation_errors(document)
    if problems:
        return None, f"diagnosis JSON breaks the schema ({problems[0]})"
    return document, ""


def _input_problem(subject: BidsSubject, document: dict) -> str:
    """Why ``document`` was not computed from the current T2w file ("" if it was)."""
    from sct_lesion_classify.modelpkg.package import file_sha256

    try:
        if document["input"]["sha256"] != file_sha256(subject.t2w):
            return "the T2w image changed since the diagnosis was computed"
    except OSError as exc:
        return f"T2w image unreadable ({exc.strerror or exc})"
    return ""


def _outputs_problem(subject: BidsSubject, document: dict, outputs: SubjectOutputs, *, lesion_path: Path,
                     lesion_source: str, models: Sequence[ModelFingerprint]) -> str:
    """Why ``document`` does not fit this lesion mask, these packages and (for an automatic mask)
    the mask and sidecar in ``outputs`` ("" if it does)."""
    mask = document["lesion_mask"]
    if mask["source"] != lesion_source or Path(mask["path"]).name != lesion_path.name:
        return f"the diagnosis used another lesion mask ({mask['source']}: {Path(mask['path']).name})"
    recorded = [(m["name"], m["version"], m["sha256"]) for m in document["provenance"]["models"]]
    if recorded != [(m.name, m.version, m.sha256) for m in models]:
        return "the diagnosis was computed with other model packages"
    if lesion_source == "automatic":
        reason = _mask_problem(lesion_path, subject.t2w)
        if reason:
            return reason
        try:
            json.loads(outputs.sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return f"lesion mask sidecar missing or unreadable ({type(exc).__name__})"
    return ""


def _mask_problem(mask_path: Path, image_path: Path) -> str:
    """Why the mask at ``mask_path`` is not a whole mask on the grid of ``image_path`` ("" if it is)."""
    import gzip
    import zlib

    import nibabel as nib
    import numpy as np

    try:
        image = nib.load(str(image_path))
        mask = nib.load(str(mask_path))
        data = np.asanyarray(mask.dataobj)  # reads (and decompresses) the whole file
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as exc:
        return f"lesion mask missing or unreadable ({type(exc).__name__})"
    if tuple(data.shape[:3]) != tuple(image.shape[:3]):
        return f"lesion mask shape {tuple(data.shape)} is not the T2w shape {tuple(image.shape)}"
    if not np.allclose(mask.affine, image.affine, atol=1e-3, rtol=0):
        return "lesion mask is not on the grid of the T2w image"
    return ""
