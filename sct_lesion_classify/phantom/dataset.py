"""Writing a synthetic BIDS dataset (SPEC section 6) of generated subjects.

Determinism: subject k is generated from its own seed, derived from (``seed``, k) with numpy's
``SeedSequence``, so subject k is identical whatever the number of subjects. Diagnoses are
balanced in blocks of four consecutive subjects (each block is a permutation of the four classes
drawn from (``seed``, block)), so any multiple of four subjects is exactly balanced. ``split="auto"``
assigns train / val / test with probabilities 0.70 / 0.15 / 0.15 from (``seed``, k); a given split
name marks every subject (held-out test sets are generated with their own seed).

``jobs`` worker processes generate the subjects in parallel (spawned, one thread each); each
subject depends only on (``seed``, k), so the dataset is the same for any number of jobs.

``style`` (``phantom.style``) applies to every subject and is written in the ``style`` column of
``participants.tsv``, after the columns the realistic dataset always had. The same (seed, k) gives
the same patient in every style.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import nibabel as nib
import numpy as np

from sct_lesion_classify import __version__
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io import bids
from sct_lesion_classify.io.image import reorient_canonical, save_nifti_atomic
from sct_lesion_classify.phantom.artefacts import require_monai
from sct_lesion_classify.phantom.cohort import DIAGNOSES
from sct_lesion_classify.phantom.style import STYLES
from sct_lesion_classify.phantom.subject import PhantomSubject, generate_subject

logger = logging.getLogger(__name__)

SPLIT_CHOICES = ("auto",) + bids.SPLITS


def subject_seed(seed: int, index: int) -> int:
    """Seed of subject ``index`` (0-based) of a dataset made with ``seed``."""
    return int(np.random.SeedSequence([seed, 0, index]).generate_state(1, dtype=np.uint64)[0]) >> 1


def subject_diagnosis(seed: int, index: int) -> str:
    """Diagnosis of subject ``index``: block-of-four balanced permutation (module docstring)."""
    block_rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index // 4]))
    return DIAGNOSES[int(block_rng.permutation(len(DIAGNOSES))[index % 4])]


def subject_split(seed: int, index: int) -> str:
    """Automatic split of subject ``index``: train / val / test with probabilities 0.70 / 0.15 / 0.15."""
    u = float(np.random.default_rng(np.random.SeedSequence([seed, 2, index])).random())
    return "train" if u < 0.70 else ("val" if u < 0.85 else "test")


def participant_id(index: int, n_subjects: int) -> str:
    """``sub-001`` style identifier (at least three digits)."""
    return f"sub-{index + 1:0{max(3, len(str(n_subjects)))}d}"


def write_subject(root: Path, subject: PhantomSubject) -> dict[str, Path]:
    """Write one subject's images and labels in its storage orientation; return the paths."""
    paths = bids.subject_paths(root, subject.participant_id)
    for key in ("t2w", "cord_mask"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
    _save(subject.t2w, subject, paths["t2w"], np.int16)
    if subject.t1c is not None:
        _save(subject.t1c, subject, paths["t1c"], np.int16)
    _save(subject.cord_mask, subject, paths["cord_mask"], np.uint8)
    _save(subject.lesion_mask, subject, paths["lesion_mask"], np.uint8)
    return paths


def _save(array: np.ndarray, subject: PhantomSubject, path: Path, dtype: type) -> None:
    data, affine = reorient_canonical(array.astype(dtype), subject.affine, subject.storage_axcodes)
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_slope_inter(1.0, 0.0)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    save_nifti_atomic(img, path)


@dataclass(frozen=True)
class SubjectJob:
    """Everything one worker needs to generate and write subject ``index`` of a dataset."""

    out_dir: Path
    seed: int
    index: int
    n_subjects: int
    shape: tuple[int, int, int] | None
    with_t1c: bool
    style: str
    split: str


def make_subject(job: SubjectJob) -> dict[str, str]:
    """Generate and write subject ``job.index``; its ``participants.tsv`` row."""
    pid = participant_id(job.index, job.n_subjects)
    subject = generate_subject(subject_seed(job.seed, job.index), subject_diagnosis(job.seed, job.index),
                               participant_id=pid, shape=job.shape, with_t1c=job.with_t1c, style=job.style)
    write_subject(job.out_dir, subject)
    logger.debug("%s: %s, %s", pid, subject.diagnosis, subject.lesion_stats)
    return {"participant_id": pid, "diagnosis": subject.diagnosis,
            "age": f"{subject.age:.1f}", "sex": subject.sex,
            "difficult": "1" if subject.difficult else "0",
            "split": subject_split(job.seed, job.index) if job.split == "auto" else job.split,
            "style": job.style}


def _one_thread() -> None:
    """Worker initializer: one BLAS / OpenMP thread per process (the processes share the cores)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"


def _rows(jobs: list[SubjectJob], workers: int) -> Iterator[dict[str, str]]:
    """The rows of ``jobs`` in their order, made by ``workers`` spawned processes (1: here)."""
    if workers == 1:
        yield from map(make_subject, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_one_thread) as executor:
        yield from executor.map(make_subject, jobs)


def write_dataset(out_dir: Path, n_subjects: int, seed: int, *, with_t1c: bool = False,
                  shape: tuple[int, int, int] | None = None, split: str = "auto",
                  style: str = "realistic", jobs: int = 1,
                  progress: Callable[[int], None] | None = None) -> list[bids.BidsSubject]:
    """Generate ``n_subjects`` subjects and write them as a BIDS dataset in ``out_dir``.

    Parameters
    ----------
    shape
        Canonical (RL slices, AP, SI) shape of every subject, or None to sample clinical geometries.
    split
        ``"auto"`` or one of train / val / test for every subject.
    style
        ``realistic`` (default), ``randomised`` or ``shifted`` (the last two need MONAI).
    jobs
        Worker processes (the dataset does not depend on it).
    progress
        Called with 1 after each subject (e.g. ``tqdm.update``).

    Raises
    ------
    InputError
        ``out_dir`` already holds a dataset (a non-empty folder), a bad ``n_subjects``, ``split``
        or ``style``, or a random style without MONAI (nothing is written then).
    """
    out_dir = Path(out_dir)
    if n_subjects < 1:
        raise InputError(f"number of subjects must be >= 1, got {n_subjects}")
    if jobs < 1:
        raise InputError(f"number of jobs must be >= 1, got {jobs}")
    if split not in SPLIT_CHOICES:
        raise InputError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    if style not in STYLES:
        raise InputError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if style != "realistic":
        require_monai(style)
    bids.check_output_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = f"synthetic sagittal T2w spine MRI, seed {seed}, {n_subjects} subjects"
    if style != "realistic":
        description += f", style {style}"
    generated_by = [{"Name": "sct_lesion_classify phantom", "Version": __version__,
                     "Description": description}]
    bids.write_dataset_description(out_dir, "sct_lesion_classify synthetic phantom", generated_by)
    labels = out_dir / bids.LABELS_DIR
    labels.mkdir(parents=True, exist_ok=True)
    bids.write_dataset_description(labels, "Manual labels (ground truth of the phantom)",
                                   generated_by, derivative=True)
    rows: list[dict[str, str]] = []
    work = [SubjectJob(out_dir, seed, index, n_subjects, shape, with_t1c, style, split) for index in range(n_subjects)]
    for row in _rows(work, min(jobs, n_subjects)):
        rows.append(row)
        if progress is not None:
            progress(1)
    bids.write_participants(out_dir, rows)
    return bids.discover_subjects(out_dir)
