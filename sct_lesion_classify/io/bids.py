"""BIDS datasets of sagittal T2w spine MRI with cord and lesion labels (SPEC section 6).

Layout::

    dataset_description.json
    participants.tsv, participants.json
    sub-XX/anat/sub-XX_T2w.nii.gz                  (optional sub-XX_ce-gad_T1w.nii.gz)
    derivatives/labels/dataset_description.json
    derivatives/labels/sub-XX/anat/sub-XX_T2w_seg-manual.nii.gz      (cord)
    derivatives/labels/sub-XX/anat/sub-XX_T2w_lesion-manual.nii.gz   (whole lesion)

``participants.tsv`` has ``participant_id`` and optionally ``diagnosis`` (one of
:data:`DIAGNOSES`), ``age``, ``sex``, ``difficult`` (0/1) and ``split`` (train | val | test).
Only numpy-free standard library code: safe for the inference path.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.atomic import write_json_atomic, write_text_atomic

DIAGNOSES = ("astrocytoma", "ependymoma", "MS", "NMOSD")
SPLITS = ("train", "val", "test")
LABELS_DIR = Path("derivatives") / "labels"
PARTICIPANT_COLUMNS = ("participant_id", "diagnosis", "age", "sex", "difficult", "split")
BIDS_VERSION = "1.9.0"

_SUBJECT_RE = re.compile(r"^sub-[A-Za-z0-9]+$")

#: participants.json: the BIDS sidecar describing the columns of participants.tsv.
PARTICIPANTS_SIDECAR = {
    "participant_id": {"Description": "Unique participant identifier"},
    "diagnosis": {"Description": "Diagnosis of the intramedullary lesion",
                  "Levels": {"astrocytoma": "spinal cord astrocytoma",
                             "ependymoma": "spinal cord ependymoma",
                             "MS": "multiple sclerosis", "NMOSD": "neuromyelitis optica spectrum disorder"}},
    "age": {"Description": "Age of the participant", "Units": "year"},
    "sex": {"Description": "Sex of the participant", "Levels": {"M": "male", "F": "female"}},
    "difficult": {"Description": "1 when the lesion's morphometric features fall in the overlap with "
                                 "another class (hard case), else 0",
                  "Levels": {"0": "typical", "1": "difficult"}},
    "split": {"Description": "Machine-learning split the participant belongs to",
              "Levels": {"train": "training", "val": "validation", "test": "held-out test"}},
    "style": {"Description": "How the image was made",
              "Levels": {"realistic": "phantom, one clinical protocol",
                         "randomised": "phantom, domain-randomised appearance and geometry",
                         "shifted": "phantom, a family held out from 'randomised' (evaluation only)",
                         "real-background": "a real scan with a synthetic lesion painted inside its cord"}},
    "source_image": {"Description": "The healthy scan the synthetic lesion was painted into"},
}


@dataclass(frozen=True)
class BidsSubject:
    """One subject of a BIDS dataset: its files and participants.tsv row."""

    participant_id: str
    t2w: Path
    t1c: Path | None
    cord_mask: Path | None
    lesion_mask: Path | None
    diagnosis: str | None
    split: str | None
    difficult: bool | None
    age: float | None
    sex: str | None
    style: str | None = None


def subject_paths(root: Path, participant_id: str) -> dict[str, Path]:
    """Where each file of a subject lives (whether or not it exists)."""
    root = Path(root)
    anat = root / participant_id / "anat"
    labels = root / LABELS_DIR / participant_id / "anat"
    return {
        "t2w": anat / f"{participant_id}_T2w.nii.gz",
        "t1c": anat / f"{participant_id}_ce-gad_T1w.nii.gz",
        "cord_mask": labels / f"{participant_id}_T2w_seg-manual.nii.gz",
        "lesion_mask": labels / f"{participant_id}_T2w_lesion-manual.nii.gz",
    }


def read_participants(root: Path) -> dict[str, dict[str, str]]:
    """Rows of ``participants.tsv`` by participant_id ({} when there is no such file).

    Raises
    ------
    InputError
        Unreadable file, no ``participant_id`` column, an invalid or duplicate id, an unknown
        diagnosis, split, sex or difficult value, or a non-numeric age.
    """
    path = Path(root) / "participants.tsv"
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read participants.tsv ({exc})") from None
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    if not reader.fieldnames or "participant_id" not in reader.fieldnames:
        raise InputError(f"{path}: no participant_id column")
    rows: dict[str, dict[str, str]] = {}
    for line, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k is not None}
        pid = row["participant_id"]
        where = f"{path}: line {line}"
        if not _SUBJECT_RE.match(pid):
            raise InputError(f"{where}: invalid participant_id {pid!r} (expected sub-<label>)")
        if pid in rows:
            raise InputError(f"{where}: duplicate participant_id {pid}")
        _check_value(where, "diagnosis", row.get("diagnosis", ""), DIAGNOSES)
        _check_value(where, "split", row.get("split", ""), SPLITS)
        _check_value(where, "sex", row.get("sex", ""), ("M", "F", "O"))
        _check_value(where, "difficult", row.get("difficult", ""), ("0", "1"))
        age = row.get("age", "")
        if age not in ("", "n/a"):
            try:
                float(age)
            except ValueError:
                raise InputError(f"{where}: age {age!r} is not a number") from None
        rows[pid] = row
    return rows


def _check_value(where: str, column: str, value: str, allowed: tuple[str, ...]) -> None:
    if value in ("", "n/a") or value in allowed:
        return
    raise InputError(f"{where}: unknown {column} {value!r}; expected one of {', '.join(allowed)}")


def write_participants(root: Path, rows: list[dict[str, str]]) -> None:
    """Write ``participants.tsv`` (tab-separated, atomic) and its ``participants.json`` sidecar.

    Columns: those of :data:`PARTICIPANT_COLUMNS` present in any row, in that order, then any
    others; missing values are written ``n/a`` as BIDS asks.
    """
    root = Path(root)
    present = {key for row in rows for key in row}
    columns = [c for c in PARTICIPANT_COLUMNS if c in present]
    columns += sorted(present - set(columns))
    if "participant_id" not in columns:
        raise ValueError("rows need a participant_id")
    lines = ["\t".join(columns)]
    for row in rows:
        values = [str(row.get(c, "n/a")) if str(row.get(c, "")) != "" else "n/a" for c in columns]
        if any("\t" in v or "\n" in v for v in values):
            raise ValueError(f"tab or newline in a participants.tsv value: {values}")
        lines.append("\t".join(values))
    write_text_atomic(root / "participants.tsv", "\n".join(lines) + "\n")
    write_json_atomic(root / "participants.json", {c: PARTICIPANTS_SIDECAR.get(c, {"Description": c})
                                                    for c in columns})


def write_dataset_description(root: Path, name: str, generated_by: list[dict[str, str]],
                              *, derivative: bool = False) -> None:
    """Write a BIDS ``dataset_description.json`` (raw or derivative)."""
    document: dict[str, object] = {"Name": name, "BIDSVersion": BIDS_VERSION,
                                   "DatasetType": "derivative" if derivative else "raw",
                                   "GeneratedBy": generated_by}
    write_json_atomic(Path(root) / "dataset_description.json", document)


def check_output_folder(out_dir: Path, input_root: Path | None = None) -> None:
    """Refuse a dataset output that exists and is not an empty folder, or that lies inside
    ``input_root`` (the dataset the inputs come from, if any).

    Raises
    ------
    InputError
        As above (inputs are never modified).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: output exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: output folder is not empty; choose a new or empty folder")
    if input_root is not None:
        root, resolved = Path(input_root).resolve(), out_dir.resolve()
        if resolved == root or root in resolved.parents:
            raise InputError(f"{out_dir}: the output would be inside the input dataset {input_root}; "
                             "choose a folder outside it (inputs are never modified)")


def discover_subjects(root: Path) -> list[BidsSubject]:
    """Subjects of a BIDS dataset that have a T2w image, sorted by participant_id.

    Labels and cT1w are included when their files exist; participants.tsv values when the file
    exists (a subject missing from it gets None values).

    Raises
    ------
    InputError
        ``root`` is not a folder, or participants.tsv is invalid (:func:`read_participants`).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: BIDS dataset folder not found")
    participants = read_participants(root)
    subjects: list[BidsSubject] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _SUBJECT_RE.match(p.name)):
        pid = folder.name
        paths = subject_paths(root, pid)
        if not paths["t2w"].is_file():
            continue
        row = participants.get(pid, {})

        def value(key: str) -> str | None:
            text = row.get(key, "")
            return None if text in ("", "n/a") else text

        difficult = value("difficult")
        age = value("age")
        subjects.append(BidsSubject(
            participant_id=pid,
            t2w=paths["t2w"],
            t1c=paths["t1c"] if paths["t1c"].is_file() else None,
            cord_mask=paths["cord_mask"] if paths["cord_mask"].is_file() else None,
            lesion_mask=paths["lesion_mask"] if paths["lesion_mask"].is_file() else None,
            diagnosis=value("diagnosis"),
            split=value("split"),
            difficult=None if difficult is None else difficult == "1",
            age=None if age is None else float(age),
            sex=value("sex"),
            style=value("style"),
        ))
    return subjects
