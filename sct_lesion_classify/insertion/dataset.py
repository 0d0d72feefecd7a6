"""A BIDS dataset of real healthy scans with synthetic lesions painted in (SPEC section 6).

Layout, as ``phantom`` writes it (so ``evaluate``, ``train`` and ``batch`` read it unchanged)::

    dataset_description.json, participants.tsv, participants.json
    sub-XXX/anat/sub-XXX_T2w.nii.gz     the source image with the lesion, on the source's grid
    sub-XXX/anat/sub-XXX_T2w.json       provenance: source files, the draw, the measured lesion
    derivatives/labels/sub-XXX/anat/sub-XXX_T2w_seg-manual.nii.gz     the source's cord mask
    derivatives/labels/sub-XXX/anat/sub-XXX_T2w_lesion-manual.nii.gz  the truth lesion mask

``participants.tsv`` has ``diagnosis``, ``age`` and ``sex`` (the class-conditional draws of the
synthetic patient, not the control's), ``difficult`` (``phantom.cohort``'s rule on the measured
lesion), ``split``, ``source_image`` and ``style`` (``real-background``).

Cases. Each source gets ``cases_per_scan`` cases; their diagnoses cycle through ``classes`` over
all cases in order (source by source), so any multiple of the number of classes is balanced.
Case k of source j is drawn from its own seeds, ``SeedSequence([seed, 3, j, k, stream])`` (stream 0:
the lesion; 1: its texture and noise), so it does not depend on how many cases or sources follow it. ``split="auto"`` gives every case of a source the
same split (``phantom.dataset.subject_split`` of the source's index: 70/15/15), so that lesions
painted into one person's scan never sit on both sides of a train/test boundary.

Atomicity. Every source is read and every lesion planned before anything is written, so a bad
input (an empty cord mask, a mask on another grid, a cord too short for a lesion) leaves nothing
behind. The dataset is then written into a hidden folder beside the output
(``.<name>.partial-XXXX``, ``io.atomic.atomic_folder``) and renamed onto the output at the end; a
failure removes that folder. Only a killed process can leave the hidden folder (never a half-written
output).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sct_lesion_classify import PROJECT_URL, __version__
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.insertion.measure import InsertedLesionStats, measure_inserted
from sct_lesion_classify.insertion.paint import paint_lesion
from sct_lesion_classify.insertion.plan import DEFAULT_SEGMENT_MM, LesionPlan, draw_lesion_plan
from sct_lesion_classify.insertion.sources import HealthyScan, LoadedScan, load_scan
from sct_lesion_classify.io import bids
from sct_lesion_classify.io.atomic import atomic_folder, write_json_atomic
from sct_lesion_classify.io.bids import check_output_folder
from sct_lesion_classify.io.image import save_like
from sct_lesion_classify.phantom.cohort import DIAGNOSES, is_difficult_measured
from sct_lesion_classify.phantom.dataset import SPLIT_CHOICES, participant_id, subject_split

logger = logging.getLogger(__name__)

STYLE = "real-background"
COMMAND = "sct_lesion_classify insert-lesions"


@dataclass(frozen=True)
class PlannedCase:
    """One case: which source, which lesion, which split."""

    participant_id: str
    source_index: int
    case_index: int
    split: str
    plan: LesionPlan


def case_generator(seed: int, source_index: int, case_index: int, stream: int) -> np.random.Generator:
    """Generator of case k of source j: stream 0 draws the lesion, stream 1 its texture and noise."""
    return np.random.default_rng(np.random.SeedSequence([seed, 3, source_index, case_index, stream]))


@dataclass(frozen=True)
class InsertionPlan:
    """Every case of a dataset, drawn and checked, before anything is written.

    Attributes
    ----------
    cases
        Per source, in order, its planned cases.
    """

    scans: tuple[HealthyScan, ...]
    cases: tuple[tuple[PlannedCase, ...], ...]
    seed: int
    segment_mm: float

    @property
    def n_cases(self) -> int:
        return sum(len(per_scan) for per_scan in self.cases)


def plan_insertion(scans: Sequence[HealthyScan], *, cases_per_scan: int, seed: int,
                   classes: Sequence[str] = DIAGNOSES, split: str = "auto",
                   segment_mm: float = DEFAULT_SEGMENT_MM,
                   allow_partial: bool = False) -> InsertionPlan:
    """Read and check every source and draw every case (module docstring).

    Parameters
    ----------
    scans
        The healthy sources (``sources.scan_from_files`` or ``sources.scans_from_bids``).
    classes
        Diagnoses cycled over the cases.
    split
        ``"auto"`` (per source) or one of train / val / test for every case.
    segment_mm, allow_partial
        See ``insertion.plan``.

    Raises
    ------
    InputError
        Bad options, and the errors of ``sources.load_scan`` and ``plan.draw_lesion_plan``.
    """
    if cases_per_scan < 1:
        raise InputError(f"cases per scan must be >= 1, got {cases_per_scan}")
    if not classes or any(c not in DIAGNOSES for c in classes):
        raise InputError(f"classes must be among {', '.join(DIAGNOSES)}, got {', '.join(classes) or 'none'}")
    if split not in SPLIT_CHOICES:
        raise InputError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    if not segment_mm > 0:
        raise InputError(f"segment length must be > 0 mm, got {segment_mm:g}")
    if not scans:
        raise InputError("no healthy scan to insert lesions into")
    total = len(scans) * cases_per_scan
    planned = []
    for j, scan in enumerate(scans):
        loaded = load_scan(scan)
        planned.append(tuple(_plan_case(loaded, j, k, j * cases_per_scan + k, total, seed, classes,
                                        split, segment_mm, allow_partial)
                             for k in range(cases_per_scan)))
        logger.debug("%s: cord %.1f mm along its centreline", scan.label, loaded.frame.length_mm)
    return InsertionPlan(tuple(scans), tuple(planned), seed, segment_mm)


def write_insertion_dataset(out_dir: Path, plan: InsertionPlan, *, input_root: Path | None = None,
                            progress: Callable[[int], None] | None = None) -> list[bids.BidsSubject]:
    """Paint the planned lesions and write the BIDS dataset ``out_dir`` (staged, then renamed).

    Parameters
    ----------
    input_root
        The BIDS dataset the scans come from, if any: the output may not lie inside it.
    progress
        Called with 1 after each case.

    Raises
    ------
    InputError
        The output folder (``io.bids.check_output_folder``), or a source changed since it was planned;
        nothing is left written then.
    ProcessingError
        The output cannot be written.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, input_root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(out_dir, "dataset") as staging:
        rows = []
        for scan, cases in zip(plan.scans, plan.cases):
            loaded = load_scan(scan)
            for case in cases:
                rows.append(_write_case(staging, loaded, case, plan.seed, plan.segment_mm))
                if progress is not None:
                    progress(1)
        _write_dataset_files(staging, rows, plan.seed, len(plan.scans), plan.n_cases)
    return bids.discover_subjects(out_dir)


def _plan_case(loaded: LoadedScan, source_index: int, case_index: int, global_index: int,
               total: int, seed: int, classes: Sequence[str], split: str, segment_mm: float,
               allow_partial: bool) -> PlannedCase:
    pid = participant_id(global_index, total)
    diagnosis = classes[global_index % len(classes)]
    plan = draw_lesion_plan(case_generator(seed, source_index, case_index, 0), diagnosis, loaded.frame,
                            segment_mm=segment_mm, allow_partial=allow_partial,
                            where=f"{loaded.scan.cord_mask} ({pid}, {diagnosis})")
    return PlannedCase(pid, source_index, case_index,
                       subject_split(seed, source_index) if split == "auto" else split, plan)


def _write_case(root: Path, loaded: LoadedScan, case: PlannedCase, seed: int,
                segment_mm: float) -> dict[str, str]:
    """Paint, measure and write one case; return its participants.tsv row."""
    plan = case.plan
    painted = paint_lesion(loaded.image.data, loaded.cord_mask, loaded.frame, plan.parts,
                           case_generator(seed, case.source_index, case.case_index, 1))
    stats = measure_inserted(painted.lesion_mask, painted.t2w, painted.cord_reference,
                             loaded.frame, segment_mm)
    if not painted.lesion_mask.any():
        raise InputError(f"{loaded.scan.cord_mask} ({case.participant_id}): the {plan.diagnosis} lesion "
                         "drawn covers no voxel of the cord mask by half; is the cord mask that thin?")
    grid = loaded.image.grid
    paths = bids.subject_paths(root, case.participant_id)
    for key in ("t2w", "cord_mask"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(grid.header.get_data_dtype())
    save_like(_fit_dtype(painted.t2w, dtype), grid, paths["t2w"], dtype)
    save_like(loaded.cord_mask, grid, paths["cord_mask"], np.uint8)
    save_like(painted.lesion_mask, grid, paths["lesion_mask"], np.uint8)
    difficult = is_difficult_measured(plan.diagnosis, stats.volume_ml, stats.extent_segments, stats.count,
                                      stats.eccentricity)
    write_json_atomic(paths["t2w"].with_name(f"{case.participant_id}_T2w.json"),
                      _sidecar(loaded, case, seed, segment_mm, stats, painted.noise_sigma))
    logger.info("%s: %s painted into %s: %.2f ml, %d lesion(s), %.1f segments, T2 ratio %.2f%s",
                case.participant_id, plan.diagnosis, loaded.scan.label, stats.volume_ml, stats.count,
                stats.extent_segments, stats.t2_ratio, " (runs out of the image)" if plan.partial else "")
    return {"participant_id": case.participant_id, "diagnosis": plan.diagnosis,
            "age": f"{plan.params.age:.1f}", "sex": plan.params.sex,
            "difficult": "1" if difficult else "0", "split": case.split,
            "source_image": str(loaded.scan.t2w), "style": STYLE}


def _fit_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values ready for the source's on-disk type: rounded and clipped for integers."""
    if dtype.kind not in "ui":
        return values
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max)


def _sidecar(loaded: LoadedScan, case: PlannedCase, seed: int, segment_mm: float,
             stats: InsertedLesionStats, noise: float) -> dict[str, object]:
    params = asdict(case.plan.params)
    return {
        "GeneratedBy": [{"Name": COMMAND, "Version": __version__, "CodeURL": PROJECT_URL}],
        "SourceImage": str(loaded.scan.t2w),
        "SourceCordMask": str(loaded.scan.cord_mask),
        "Style": STYLE,
        "LesionInsertion": {
            "seed": seed, "source_index": case.source_index, "case_index": case.case_index,
            "segment_mm": segment_mm, "runs_out_of_image": case.plan.partial,
            "drawn": {key: params[key] for key in ("diagnosis", "volume_ml", "count", "extent_segments")},
            "parts": [{"kind": p.kind, "in_mask": p.in_mask, "t2_ratio": round(p.t2_ratio, 3)}
                      for p in case.plan.parts],
            "measured": asdict(stats),
            "cord_length_mm": round(loaded.frame.length_mm, 2),
            "noise_sigma": round(noise, 3),
        },
    }


def _write_dataset_files(root: Path, rows: list[dict[str, str]], seed: int, n_scans: int,
                         n_cases: int) -> None:
    generated_by = [{"Name": COMMAND, "Version": __version__, "CodeURL": PROJECT_URL,
                     "Description": f"synthetic lesions painted into {n_scans} healthy scan(s), "
                                    f"seed {seed}, {n_cases} cases"}]
    for folder, name in ((root, "sct_lesion_classify real-background lesions"),
                         (root / bids.LABELS_DIR, "Labels: the sources' cord masks and the inserted lesions")):
        folder.mkdir(parents=True, exist_ok=True)
        bids.write_dataset_description(folder, name, generated_by, derivative=folder != root)
    bids.write_participants(root, rows)
