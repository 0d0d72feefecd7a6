"""The cohort lesion table (``lesion_seg_analysis.csv``): every subject's lesion table in one file.

Each subject's ``sub-XX/anat/<T2w stem>_lesion_seg_analysis.csv`` (written by the pipeline,
``lesion.analysis_table``: one row per lesion, ``sct_analyze_lesion``'s columns first) becomes
rows of one table in the output folder, with a ``subject`` column first (the participant_id)
and the per-image columns ``mean_<T2w stem>`` / ``std_<T2w stem>`` named ``mean_T2w`` /
``std_T2w``, the same for every subject (:data:`COHORT_IMAGE_NAME`). A subject without lesion
has no row.

The table is rebuilt from the per-subject files, never from memory alone: at the start of a
run for every subject of the diagnosis table whose row is not failed (finished in this run or
an earlier one: resume), then again for each subject as it finishes. It is rewritten whole
(atomically) with the diagnosis table; rows are sorted by subject, then by lesion label. A
per-subject file that is missing (outputs of a version before this table) or not a lesion table
of this version is left out with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sct_lesion_classify.batch.table import CLASS_COLUMNS, STATUS_FAILED
from sct_lesion_classify.io.atomic import write_text_atomic
from sct_lesion_classify.lesion.analysis_table import format_csv, read_lesion_table, table_columns
from sct_lesion_classify.pipeline.outputs import LESION_TABLE_SUFFIX

logger = logging.getLogger(__name__)

LESION_TABLE_NAME = "lesion_seg_analysis.csv"
#: The image name of the ``mean_`` / ``std_`` columns in the cohort table.
COHORT_IMAGE_NAME = "T2w"
#: The subject's columns that the pipeline writes after the lesion columns (the diagnosis).
DIAGNOSIS_COLUMNS = (*CLASS_COLUMNS, "most_likely_class")
#: The columns of a subject's table once its image name is :data:`COHORT_IMAGE_NAME`.
SUBJECT_TABLE_COLUMNS = table_columns(COHORT_IMAGE_NAME, DIAGNOSIS_COLUMNS)
COLUMNS = ("subject", *SUBJECT_TABLE_COLUMNS)


def subject_lesion_rows(output_root: str | os.PathLike, participant_id: str) -> list[tuple[str, ...]]:
    """The cohort rows of one subject, read from its lesion table(s) (module documentation)."""
    folder = Path(output_root) / participant_id / "anat"
    paths = sorted(folder.glob(f"*{LESION_TABLE_SUFFIX}.csv"))
    if not paths:
        logger.warning("%s: no lesion table (%s*%s.csv) in %s; not in %s", participant_id, participant_id,
                       LESION_TABLE_SUFFIX, folder, LESION_TABLE_NAME)
    rows = []
    for path in paths:
        try:
            image_name, header, cells = read_lesion_table(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            logger.warning("%s: lesion table not read (%s); not in %s", path, " ".join(str(exc).split()),
                           LESION_TABLE_NAME)
            continue
        if tuple(header) != table_columns(image_name, DIAGNOSIS_COLUMNS):
            logger.warning("%s: another version's lesion table; not in %s", path, LESION_TABLE_NAME)
            continue
        rows += [(participant_id, *row) for row in cells]
    return rows


class CohortLesionTable:
    """The rows of the cohort lesion table by subject, and its writing."""

    def __init__(self, output_root: str | os.PathLike) -> None:
        self.output_root = Path(output_root)
        self.path = self.output_root / LESION_TABLE_NAME
        self.rows: dict[str, list[tuple[str, ...]]] = {}

    def update(self, participant_id: str, status: str) -> None:
        """Read the subject's rows again (none for a failed subject)."""
        if status == STATUS_FAILED:
            self.rows.pop(participant_id, None)
        else:
            self.rows[participant_id] = subject_lesion_rows(self.output_root, participant_id)

    def write(self) -> None:
        """Rewrite the table atomically, sorted by subject then label."""
        ordered = [row for pid in sorted(self.rows) for row in sorted(self.rows[pid], key=_label_order)]
        write_text_atomic(self.path, format_csv(COLUMNS, ordered))


def _label_order(row: tuple[str, ...]) -> int:
    try:
        return int(row[1])
    except ValueError:
        return 0
