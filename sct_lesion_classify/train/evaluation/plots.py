"""ROC curves, confusion matrices and reliability diagrams as PNG (matplotlib, part of the
``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.io.atomic import atomic_path
from sct_lesion_classify.train.evaluation.metrics import reliability_bins, roc_auc, roc_curve


def require_matplotlib() -> None:
    """Raise ``InputError`` (one line) when matplotlib, which draws the figures, is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("evaluate draws its figures with matplotlib, which is not installed: "
                         "pip install 'sct_lesion_classify[train]'") from None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, title: str, truth: np.ndarray, scores: np.ndarray,
             baseline: np.ndarray | None = None, fused: np.ndarray | None = None) -> Path:
    """ROC curve of a classifier (and of the morphometry baseline, and of their fusion) with their AUCs."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for label, values, style in (("DenseNet121", scores, "-"), ("morphometry baseline", baseline, "--"),
                                 ("fused", fused, "-.")):
        if values is None or len(values) == 0:
            continue
        fpr, tpr, _ = roc_curve(truth, values)
        axis.plot(fpr, tpr, style, label=f"{label} (AUC {roc_auc(truth, values):.2f})")
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return _save(figure, path, plt)


def plot_confusion(path: Path, title: str, labels: list[str], matrix: list[list[int]]) -> Path:
    """A confusion matrix (rows: truth, columns: prediction) with its counts."""
    plt = _pyplot()
    data = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.6), dpi=100)
    axis.imshow(data, cmap="Blues")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            axis.text(j, i, str(data[i, j]), ha="center", va="center",
                      color="white" if data[i, j] > data.max() / 2 else "black")
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel="predicted", ylabel="truth", title=title)
    figure.tight_layout()
    return _save(figure, path, plt)


def plot_reliability(path: Path, title: str, truth: np.ndarray, scores: dict[str, np.ndarray | None],
                     n_bins: int = 10) -> Path:
    """Reliability diagram: per probability bin, the share of positives against the mean
    probability, for each set of ``scores`` (label -> probabilities; None is left out), with
    the ECE in the legend and the number of subjects per bin as marker size."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    axis.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for (label, values), marker in zip(scores.items(), "osd^"):
        if values is None or len(values) == 0:
            continue
        bins = reliability_bins(truth, values, n_bins)
        (line,) = axis.plot(bins.mean_probability, bins.positive_fraction, "-", marker=marker,
                            label=f"{label} (ECE {bins.expected_calibration_error:.3f})")
        axis.scatter(bins.mean_probability, bins.positive_fraction, s=12 + 6 * bins.counts, alpha=0.3,
                     color=line.get_color())
    axis.set(xlabel="mean predicted probability", ylabel="fraction of positives", title=title,
             xlim=(0, 1), ylim=(-0.01, 1.01))
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return _save(figure, path, plt)


def binary_confusion(truth: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """2x2 counts, rows (negative, positive) truth, columns (negative, positive) prediction."""
    predicted = np.asarray(scores) >= threshold
    truth = np.asarray(truth, bool)
    return [[int((~truth & ~predicted).sum()), int((~truth & predicted).sum())],
            [int((truth & ~predicted).sum()), int((truth & predicted).sum())]]


def _save(figure, path: Path, plt) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return path


def write_figures(folder: Path, records, baselines: dict, positive_class: dict[str, str], four_class: dict) -> None:
    """One set's figures in ``folder``: ROC curve, confusion matrix and reliability diagram of each
    classifier with subjects of both classes (``roc_<role>.png``, ``confusion_<role>.png``,
    ``reliability_<role>.png``: the network's, calibrated and fused probabilities) and the
    four-class confusion matrix (``confusion_four_class.png``)."""
    from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
    from sct_lesion_classify.train.evaluation.report import head_scores, roc_data, scored_records

    for role in ROLE_CLASSES:
        truth, scores, base = roc_data(records, role, baselines.get(role))
        if truth.size and truth.any() and (~truth).any():
            heads = head_scores(scored_records(records, role), role)
            plot_roc(folder / f"roc_{role}.png", role, truth, heads["densenet"], base, heads["fused"])
            plot_reliability(folder / f"reliability_{role}.png", role, truth,
                             {"DenseNet121": heads["densenet"], "calibrated": heads["calibrated"],
                              "fused": heads["fused"]})
            negative = next(c for c in ROLE_CLASSES[role] if c != positive_class[role])
            plot_confusion(folder / f"confusion_{role}.png", role, [negative, positive_class[role]],
                           binary_confusion(truth, scores))
    plot_confusion(folder / "confusion_four_class.png", "four classes", four_class["classes"], four_class["confusion"])
