"""From a BIDS dataset (SPEC section 6) to training samples: splits, volumes, slices.

Splits are per patient, never per slice: :func:`split_subjects` uses the ``split`` column of
``participants.tsv`` where it is filled in, and otherwise a deterministic split stratified by
diagnosis (``val_fraction`` of each diagnosis, 20 % by default like the paper's 80/20 split,
drawn with ``seed``). The split is made over the whole dataset before a model family picks its
subjects, so a patient is in the same split for every model of the cascade.
:func:`check_no_leakage` asserts that no patient is in two splits.

Segmentation families see every sagittal slice of the subject (cord) or of the crop around the
cord mask (lesion), resampled to the recipe's spacing (:class:`SegmentationVolume`); classifiers
see the slices built by :func:`sct_lesion_classify.classify.inputs.build_classifier_slices`, the
same function inference uses (:class:`ClassifierSubject`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sct_lesion_classify.errors import InputError

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class SubjectSplit:
    """Subjects per split; ``source`` says how the split was made."""

    train: tuple[Any, ...]
    val: tuple[Any, ...]
    test: tuple[Any, ...]
    source: str

    def describe(self) -> str:
        """One line: sizes and source."""
        return (f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test subjects "
                f"({self.source})")


def split_subjects(subjects: Sequence[Any], val_fraction: float = 0.2, seed: int = 0, *,
                   use_split_column: bool = True) -> SubjectSplit:
    """Split subjects per patient (see the module docstring).

    Subjects whose ``split`` is set keep it; the others are split deterministically, stratified by
    diagnosis: in each diagnosis, sorted by ``participant_id`` and permuted with ``seed``,
    ``round(n * val_fraction)`` go to validation (at least one when ``n >= 2`` and
    ``val_fraction > 0``). Several entries of one ``participant_id`` stay together. With
    ``use_split_column=False`` only ``test`` subjects keep their split (held out) and every other
    subject is split deterministically.

    Raises
    ------
    InputError
        ``val_fraction`` outside [0, 1), or one participant given two different splits.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    by_patient: dict[str, list[Any]] = defaultdict(list)
    for subject in subjects:
        by_patient[subject.participant_id].append(subject)
    assigned: dict[str, str] = {}
    for pid, entries in by_patient.items():
        splits = {entry.split for entry in entries if entry.split is not None
                  and (use_split_column or entry.split == "test")}
        if len(splits) > 1:
            raise InputError(f"participants.tsv: {pid} is listed in several splits {sorted(splits)}")
        if splits:
            assigned[pid] = splits.pop()
    free = sorted(pid for pid in by_patient if pid not in assigned)
    by_diagnosis: dict[str, list[str]] = defaultdict(list)
    for pid in free:
        by_diagnosis[str(by_patient[pid][0].diagnosis)].append(pid)
    for diagnosis in sorted(by_diagnosis):
        pids = by_diagnosis[diagnosis]
        rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(diagnosis)]))
        order = [pids[i] for i in rng.permutation(len(pids))]
        n_val = int(round(len(pids) * val_fraction))
        if n_val == 0 and len(pids) >= 2 and val_fraction > 0:
            n_val = 1
        for index, pid in enumerate(order):
            assigned[pid] = "val" if index < n_val else "train"
    if not use_split_column:
        source = (f"deterministic per-patient split, {val_fraction:.0%} validation per diagnosis, "
                  f"seed {seed} (participants.tsv split column ignored except test)")
    elif not free:
        source = "participants.tsv split column"
    elif len(free) == len(by_patient):
        source = f"deterministic per-patient split, {val_fraction:.0%} validation per diagnosis, seed {seed}"
    else:
        source = (f"participants.tsv split column; {len(free)} subject(s) without one split "
                  f"deterministically ({val_fraction:.0%} validation, seed {seed})")
    groups: dict[str, list[Any]] = {"train": [], "val": [], "test": []}
    for pid in sorted(by_patient):
        groups[assigned[pid]].extend(by_patient[pid])
    result = SubjectSplit(tuple(groups["train"]), tuple(groups["val"]), tuple(groups["test"]), source)
    check_no_leakage(result)
    return result


def split_datasets(datasets: Sequence[Path], val_fraction: float = 0.2, seed: int = 0, *,
                   use_split_column: bool = True) -> tuple[tuple[Any, ...], SubjectSplit]:
    """The subjects of BIDS ``datasets`` and their split, each dataset split on its own
    (:func:`split_subjects`) and the splits joined (:func:`join_splits`): how ``train`` splits,
    so that ``calibrate`` finds the same validation patients."""
    from sct_lesion_classify.io.bids import discover_subjects

    subjects: list[Any] = []
    splits = []
    for bids in datasets:
        found = discover_subjects(bids)
        split = split_subjects(found, val_fraction, seed, use_split_column=use_split_column)
        logger.info("%s: %s", bids, split.describe())
        subjects += found
        splits.append(split)
    return tuple(subjects), join_splits(splits)


def join_splits(splits: Sequence[SubjectSplit]) -> SubjectSplit:
    """The splits of several datasets as one (each dataset split on its own).

    Participants of different datasets are different people even when their ``participant_id``
    is the same (two phantom sets both have ``sub-001``), so leakage is checked per dataset.
    """
    if len(splits) == 1:
        return splits[0]
    return SubjectSplit(*(tuple(s for split in splits for s in getattr(split, name))
                          for name in ("train", "val", "test")),
                        source="; ".join(f"dataset {k + 1}: {split.source}"
                                         for k, split in enumerate(splits)))


def check_no_leakage(split: SubjectSplit) -> None:
    """Raise ``AssertionError`` if a participant appears in two splits."""
    seen: dict[str, str] = {}
    for name in ("train", "val", "test"):
        for subject in getattr(split, name):
            other = seen.setdefault(subject.participant_id, name)
            if other != name:
                raise AssertionError(f"{subject.participant_id} is in both {other} and {name}")


def _stable_hash(text: str) -> int:
    return int.from_bytes(text.encode("utf-8")[:8].ljust(8, b"\0"), "little")


def is_synthetic(root: str | Path) -> bool:
    """Whether ``dataset_description.json`` says the data were generated (the phantom)."""
    path = Path(root) / "dataset_description.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = [str(document.get("Name", ""))]
    names += [str(entry.get("Name", "")) for entry in document.get("GeneratedBy", []) or []
              if isinstance(entry, dict)]
    return any("phantom" in name.lower() or "synthetic" in name.lower() for name in names)


def describe_subjects(subjects: Iterable[Any]) -> str:
    """``12 subjects (astrocytoma 3, ependymoma 3, MS 3, NMOSD 3)``."""
    subjects = list(subjects)
    counts = Counter(str(subject.diagnosis) for subject in subjects)
    return f"{len(subjects)} subjects (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


# ------------------------------------------------------------------------------------ volumes
@dataclass(frozen=True)
class LoadedSubject:
    """One subject's canonical arrays (see ``io.image``)."""

    participant_id: str
    diagnosis: str | None
    t2w: np.ndarray
    zooms_mm: tuple[float, float, float]
    cord_mask: np.ndarray | None
    lesion_mask: np.ndarray | None
    t1c: np.ndarray | None


def load_subject(subject: Any, *, cord: bool = False, lesion: bool = False, t1c: bool = False
                 ) -> LoadedSubject:
    """Load the T2w image and the asked-for masks / cT1w of ``subject`` (canonical orientation).

    Raises
    ------
    InputError
        A missing or unreadable file, or a mask / cT1w not on the T2w grid.
    """
    from sct_lesion_classify.io.image import load_image, load_mask

    if subject.t2w is None:
        raise InputError(f"{subject.participant_id}: no T2w image")
    image = load_image(subject.t2w, what=f"{subject.participant_id} T2w image")

    def mask(path: Path | None, what: str) -> np.ndarray:
        if path is None:
            raise InputError(f"{subject.participant_id}: no {what} (derivatives/labels)")
        data, warnings = load_mask(path, image.grid, what=f"{subject.participant_id} {what}")
        for warning in warnings:
            logger.warning(warning)
        return data

    t1c_data = None
    if t1c and subject.t1c is not None:
        t1c_image = load_image(subject.t1c, what=f"{subject.participant_id} cT1w image")
        if not t1c_image.grid.same_space(image.grid):
            raise InputError(f"{subject.t1c}: cT1w image is not on the T2w grid")
        t1c_data = t1c_image.data
    return LoadedSubject(
        participant_id=subject.participant_id,
        diagnosis=subject.diagnosis,
        t2w=image.data,
        zooms_mm=image.zooms,
        cord_mask=mask(subject.cord_mask, "cord mask") if cord else None,
        lesion_mask=mask(subject.lesion_mask, "lesion mask") if lesion else None,
        t1c=t1c_data,
    )


@dataclass(frozen=True)
class SegmentationVolume:
    """One subject's slices on the model grid: ``image`` and ``label`` ``(N, H, W)``."""

    participant_id: str
    image: np.ndarray
    label: np.ndarray

    @property
    def positive_slices(self) -> np.ndarray:
        """Indices of the slices that contain target."""
        return np.flatnonzero(self.label.reshape(len(self.label), -1).any(axis=1))


def segmentation_volume(loaded: LoadedSubject, recipe: Any, input_spec: Any) -> SegmentationVolume:
    """The recipe's view of a subject, exactly as inference prepares it.

    Crop around the cord mask when the card has ``crop_margins_mm`` (the lesion model; training
    uses the reference cord mask), then
    :func:`sct_lesion_classify.runtime.sagittal.prepare_slices` (normalization, resampling to the
    card's spacing, padding to ``size_divisible_by``): the function the pipeline runs. The label is
    the recipe's target, resampled linearly on the same grid and thresholded at 0.5.
    """
    from sct_lesion_classify.runtime.preprocess import Volume
    from sct_lesion_classify.runtime.sagittal import prepare_slices

    image, label = loaded.t2w, recipe.target(loaded)
    if input_spec.crop_margins_mm is not None:
        from sct_lesion_classify.cord.crop import crop_box_around

        box = crop_box_around(loaded.cord_mask, loaded.zooms_mm, input_spec.crop_margins_mm)
        image, label = box.apply(image), box.apply(label)
    slices, resampler = prepare_slices(Volume(image, loaded.zooms_mm), input_spec)
    labels = resampler.forward(label.astype(np.float32), order=1, cval=0.0) >= 0.5
    return SegmentationVolume(loaded.participant_id, slices, labels.astype(np.uint8))


@dataclass(frozen=True)
class ClassifierSubject:
    """One subject's classifier input: ``slices`` float16 ``(N, 3, H, W)`` and its 0/1 label."""

    participant_id: str
    label: int
    slices: np.ndarray
    slice_indices: tuple[int, ...]
    has_t1c: bool


def classifier_subject(loaded: LoadedSubject, label: int, card_input: Any) -> ClassifierSubject:
    """Build the slices with :func:`~sct_lesion_classify.classify.inputs.build_classifier_slices`.

    Stored as float16 in memory (values in [0, 1]: 3 significant digits are plenty, and it halves
    the memory of large cohorts); converted back to float32 for the network.
    """
    from sct_lesion_classify.classify.inputs import build_classifier_slices
    from sct_lesion_classify.runtime.preprocess import Volume

    t1c = None if loaded.t1c is None else Volume(loaded.t1c, loaded.zooms_mm)
    built = build_classifier_slices(Volume(loaded.t2w, loaded.zooms_mm), loaded.lesion_mask,
                                    card_input, t1c=t1c)
    return ClassifierSubject(loaded.participant_id, int(label), built.batch.astype(np.float16),
                             built.slice_indices, loaded.t1c is not None)
