"""The evaluation sets reported side by side, and the checks that keep training data out of them.

``evaluate`` scores the in-distribution held-out set and, optionally, three sets that measure
transfer (issue 14 item 5): phantoms of the held-out ``shifted`` style, lesions inserted into real
healthy scans (``insert-lesions``), and untouched real healthy scans (false positives). A set is
refused when a subject it would score belongs to the ``train`` split, and a ``shifted`` set when
one of its subjects has a training style (``realistic``, ``randomised``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.bids import BidsSubject, discover_subjects

logger = logging.getLogger(__name__)

IN_DISTRIBUTION = "in_distribution"
SHIFTED = "shifted"
REAL_BACKGROUND = "real_background"
REAL_HEALTHY = "real_healthy"

#: Set name -> the column heading of the report, in report order.
SET_LABELS = {
    IN_DISTRIBUTION: "in-distribution phantoms",
    SHIFTED: "shifted-style phantoms",
    REAL_BACKGROUND: "real scans, inserted lesions",
    REAL_HEALTHY: "real scans, healthy",
}
#: Phantom styles the models are trained on: never a "shifted" evaluation set.
TRAINING_STYLES = ("realistic", "randomised")
#: Sets whose subjects carry lesions and diagnoses (the healthy set has neither).
LESION_SETS = (IN_DISTRIBUTION, SHIFTED, REAL_BACKGROUND)
#: The command-line option of each set, for messages.
_OPTIONS = {IN_DISTRIBUTION: "--bids", SHIFTED: "--shifted", REAL_BACKGROUND: "--real-background",
            REAL_HEALTHY: "--real-healthy"}


@dataclass(frozen=True)
class EvaluationSet:
    """The subjects of one evaluation set.

    Attributes
    ----------
    name : str
        One of :data:`SET_LABELS`.
    bids : Path
        The BIDS dataset.
    split : str
        The split asked for ('test', 'val' or 'all'); 'all' when the dataset has no split column.
    subjects : tuple of BidsSubject
        The subjects scored, sorted by participant_id.
    """

    name: str
    bids: Path
    split: str
    subjects: tuple[BidsSubject, ...]

    @property
    def label(self) -> str:
        """The set's column heading."""
        return SET_LABELS[self.name]

    @property
    def has_lesions(self) -> bool:
        """Whether the subjects carry lesions and diagnoses (all sets but the healthy one)."""
        return self.name in LESION_SETS


def select_set(name: str, bids: Path, split: str) -> EvaluationSet:
    """The subjects of ``bids`` that set ``name`` scores, after the checks against training data.

    The subjects of ``split`` are taken ('all': every subject). A dataset whose participants.tsv
    gives no split at all (e.g. a folder of real healthy scans) is taken whole.

    Raises
    ------
    InputError
        ``split`` is 'train', a chosen subject is in the train split, no subject is chosen, a
        lesion set's subject has no diagnosis, or a ``shifted`` set's subject has a training style.
    """
    if name not in SET_LABELS:
        raise ValueError(f"unknown evaluation set {name!r}")
    bids = Path(bids)
    option = _OPTIONS[name]
    if split == "train":
        raise InputError(f"{option} {bids}: --split train asked; evaluate never scores a training split")
    subjects = discover_subjects(bids)
    if split != "all" and not any(s.split for s in subjects):
        logger.info("%s: participants.tsv gives no split; every subject is evaluated", bids)
        split = "all"
    chosen = [s for s in subjects if split == "all" or s.split == split]
    if not chosen:
        raise InputError(f"{option} {bids}: no subject in split {split!r} ({len(subjects)} subjects in all)")
    trained = [s.participant_id for s in chosen if s.split == "train"]
    if trained:
        raise InputError(f"{option} {bids}/participants.tsv: {len(trained)} subject(s) in the train split "
                         f"({', '.join(trained[:3])}); evaluate never scores training data")
    if name in LESION_SETS:
        missing = [s.participant_id for s in chosen if s.diagnosis is None]
        if missing:
            raise InputError(f"{option} {bids}/participants.tsv: no diagnosis for {', '.join(missing[:5])}")
    if name == SHIFTED:
        _check_held_out_style(bids, chosen)
    return EvaluationSet(name=name, bids=bids, split=split, subjects=tuple(chosen))


def _check_held_out_style(bids: Path, chosen: list[BidsSubject]) -> None:
    option = _OPTIONS[SHIFTED]
    training = sorted({s.style for s in chosen} & set(TRAINING_STYLES))
    if training:
        raise InputError(f"{option} {bids}/participants.tsv: style {', '.join(training)} is a training style; "
                         f"{option} takes a held-out style (e.g. 'phantom --style shifted')")
    unknown = [s.participant_id for s in chosen if s.style is None]
    if unknown:
        logger.warning("%s %s: no style for %d subject(s) in participants.tsv; make sure no model was "
                       "trained on them", option, bids, len(unknown))
