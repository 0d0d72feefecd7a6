"""The cohort CSV (``diagnoses.csv``): one typed row per subject, written atomically.

Columns (:data:`COLUMNS`):

- ``participant_id``, ``status`` (``ok``; ``no_lesion``: the lesion mask is empty, so no
  diagnosis; ``failed``) and ``error`` (one line, empty unless failed);
- ``p_astrocytoma``, ``p_ependymoma``, ``p_MS``, ``p_NMOSD`` (the four class probabilities),
  ``most_likely_class``, ``group`` (tumor | demyelinating) and ``confidence`` (high | low);
- ``trust`` (ok | review | unreliable: whether the result should be trusted, the diagnosis JSON's
  ``trust.level``) and ``flags`` (the codes of the trust checks that fired, ``;``-separated;
  ``models/README.md``, "Trust flags", explains them); both empty for a diagnosis JSON of schema
  version 1, which has no trust section;
- ``lesion_count`` and ``lesion_volume_mm3`` (total);
- ``runtime_<stage>_s`` for the stages load, segmentation (cord localization and the writing
  of the mask included), morphometry and classification, as recorded in the diagnosis JSON's
  provenance, and ``runtime_total_s``: the sum of everything recorded there (for a failed
  subject: the time until the failure);
- ``models``: ``name version`` of every model package used, ``;``-separated, in pipeline order;
- ``diagnosis_json`` and ``lesion_mask``: the subject's outputs, relative to the BIDS folder when
  they lie inside it.

Every row of a finished subject is computed from its diagnosis JSON (:func:`outcome_from_document`),
whether it was computed by this run, by a worker of a Dask cluster or by an earlier run, so the
CSV says the same thing in every case; only the runtime columns change from run to run.
The file is rewritten whole (temporary file, then rename) with its rows sorted by
``participant_id``: a reader, or a run killed at any moment, sees the previous complete table or
the new one, never a partial one.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from sct_lesion_classify.classify.diagnosis import CLASSES
from sct_lesion_classify.io.atomic import write_text_atomic

STATUS_OK = "ok"
STATUS_NO_LESION = "no_lesion"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_NO_LESION, STATUS_FAILED)

CLASS_COLUMNS = tuple(f"p_{name}" for name in CLASSES)
#: Stages of the runtime columns, in pipeline order.
RUNTIME_STAGES = ("load", "segmentation", "morphometry", "classification")
RUNTIME_COLUMNS = tuple(f"runtime_{stage}_s" for stage in RUNTIME_STAGES) + ("runtime_total_s",)
TRUST_COLUMNS = ("trust", "flags")
COLUMNS = ("participant_id", "status", "error", *CLASS_COLUMNS, "most_likely_class", "group",
           "confidence", *TRUST_COLUMNS, "lesion_count", "lesion_volume_mm3", *RUNTIME_COLUMNS, "models",
           "diagnosis_json", "lesion_mask")
#: The header of the tables written before the trust columns (still read back).
COLUMNS_WITHOUT_TRUST = tuple(column for column in COLUMNS if column not in TRUST_COLUMNS)


@dataclass(frozen=True)
class SubjectOutcome:
    """What happened to one subject: one row of the cohort CSV.

    Attributes
    ----------
    participant_id
        ``sub-<label>``.
    status
        One of :data:`STATUSES`.
    error
        One-line error message of a failed subject ("" otherwise).
    probabilities
        Class -> probability (:data:`~sct_lesion_classify.classify.diagnosis.CLASSES`); empty
        without a diagnosis.
    most_likely_class, group, confidence
        From the diagnosis; None without one.
    trust, flags
        The trust level and the codes of the checks that fired (None / empty: not recorded).
    lesion_count, lesion_volume_mm3
        Lesion morphometry; None for a failed subject.
    runtime_s
        Seconds per stage of :data:`RUNTIME_STAGES` (those that ran) and ``"total"``.
    models
        ``"name version"`` of each model package used, in pipeline order.
    diagnosis_json, lesion_mask
        Output paths as written in the CSV (relative to the BIDS folder when inside it).
    """

    participant_id: str
    status: str
    error: str = ""
    probabilities: Mapping[str, float] = field(default_factory=dict)
    most_likely_class: str | None = None
    group: str | None = None
    confidence: str | None = None
    trust: str | None = None
    flags: tuple[str, ...] = ()
    lesion_count: int | None = None
    lesion_volume_mm3: float | None = None
    runtime_s: Mapping[str, float] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    diagnosis_json: str | None = None
    lesion_mask: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if (self.status == STATUS_FAILED) != bool(self.error):
            raise ValueError("a failed subject needs an error message, and only a failed one")
        if "\n" in self.error or "\r" in self.error:
            raise ValueError("the error message must be one line")

    @property
    def failed(self) -> bool:
        """Whether the subject failed."""
        return self.status == STATUS_FAILED

    def to_row(self) -> dict[str, str]:
        """The CSV row (every value a string; missing values empty)."""
        row = {
            "participant_id": self.participant_id,
            "status": self.status,
            "error": self.error,
            **{f"p_{name}": _number(self.probabilities.get(name), 6) for name in CLASSES},
            "most_likely_class": self.most_likely_class or "",
            "group": self.group or "",
            "confidence": self.confidence or "",
            "trust": self.trust or "",
            "flags": ";".join(self.flags),
            "lesion_count": "" if self.lesion_count is None else str(int(self.lesion_count)),
            "lesion_volume_mm3": _number(self.lesion_volume_mm3, 4),
            **{f"runtime_{stage}_s": _number(self.runtime_s.get(stage), 3) for stage in RUNTIME_STAGES},
            "runtime_total_s": _number(self.runtime_s.get("total"), 3),
            "models": "; ".join(self.models),
            "diagnosis_json": self.diagnosis_json or "",
            "lesion_mask": self.lesion_mask or "",
        }
        assert tuple(row) == COLUMNS
        return row


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else repr(round(float(value), digits))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def error_message(exc: BaseException) -> str:
    """One line naming the error: ``<ExceptionType>: <message>``."""
    detail = one_line(str(exc))
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def stage_runtimes(runtime_s: Mapping[str, float]) -> dict[str, float]:
    """Group the diagnosis JSON's ``provenance.runtime_s`` into :data:`RUNTIME_STAGES` + total.

    ``load`` -> load; ``segmentation_*`` -> segmentation; ``morphometry``; ``classify_*`` ->
    classification. Every recorded value counts in ``total``.
    """
    stages: dict[str, float] = {}
    for key, seconds in runtime_s.items():
        if key == "load":
            stage = "load"
        elif key.startswith("segmentation_"):
            stage = "segmentation"
        elif key == "morphometry":
            stage = "morphometry"
        elif key.startswith("classify_"):
            stage = "classification"
        else:
            stage = None
        if stage is not None:
            stages[stage] = stages.get(stage, 0.0) + float(seconds)
    stages["total"] = float(sum(float(s) for s in runtime_s.values()))
    return stages


def outcome_from_document(participant_id: str, document: Mapping, *, diagnosis_json: str,
                          lesion_mask: str) -> SubjectOutcome:
    """The row of a finished subject, from its (schema-valid) diagnosis JSON document."""
    diagnosis = document.get("diagnosis")
    trust = document.get("trust")  # absent from schema version 1
    lesions = document["lesions"]
    provenance = document["provenance"]
    return SubjectOutcome(
        participant_id=participant_id,
        status=STATUS_NO_LESION if diagnosis is None else STATUS_OK,
        probabilities={} if diagnosis is None else {k: float(v) for k, v in diagnosis["probabilities"].items()},
        most_likely_class=None if diagnosis is None else diagnosis["most_likely_class"],
        group=None if diagnosis is None else diagnosis["group"],
        confidence=None if diagnosis is None else diagnosis["confidence"],
        trust=None if trust is None else trust["level"],
        flags=() if trust is None else tuple(dict.fromkeys(check["code"] for check in trust["checks"])),
        lesion_count=int(lesions["count"]),
        lesion_volume_mm3=float(lesions["total_volume_mm3"]),
        runtime_s=stage_runtimes(provenance["runtime_s"]),
        models=tuple(f"{m['name']} {m['version']}" for m in provenance["models"]),
        diagnosis_json=diagnosis_json,
        lesion_mask=lesion_mask,
    )


def failed_outcome(participant_id: str, error: str, *, runtime_s: float | None,
                   models: Iterable[str] = ()) -> SubjectOutcome:
    """The row of a failed subject (``error`` is made one line)."""
    return SubjectOutcome(participant_id=participant_id, status=STATUS_FAILED,
                          error=one_line(error) or "failed",
                          runtime_s={} if runtime_s is None else {"total": float(runtime_s)},
                          models=tuple(models))


def format_table(rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text of ``rows`` (header :data:`COLUMNS`), sorted by participant_id."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["participant_id"]):
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    return buffer.getvalue()


def write_table(path: str | os.PathLike, rows: Iterable[Mapping[str, str]]) -> None:
    """Write the cohort CSV atomically (see the module docstring)."""
    write_text_atomic(path, format_table(rows))


def read_table(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Rows of a cohort CSV by participant_id.

    Raises
    ------
    ValueError
        The header is neither :data:`COLUMNS` nor :data:`COLUMNS_WITHOUT_TRUST` (whose rows get
        empty trust columns), a row has another number of fields, or a participant_id repeats.
    OSError
        The file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) not in (COLUMNS, COLUMNS_WITHOUT_TRUST):
        raise ValueError(f"{path}: not a cohort table of this version (header {header})")
    columns = tuple(header)
    rows: dict[str, dict[str, str]] = {}
    for line, values in enumerate(reader, start=2):
        if len(values) != len(columns):
            raise ValueError(f"{path}: line {line} has {len(values)} fields, expected {len(columns)}")
        row = {column: "" for column in COLUMNS} | dict(zip(columns, values))
        if row["participant_id"] in rows:
            raise ValueError(f"{path}: line {line} repeats {row['participant_id']}")
        rows[row["participant_id"]] = row
    return rows
