"""The two training objectives that :func:`~sct_lesion_classify.train.loop.fit` optimizes.

An objective is what a model family is trained for: its batches, loss, validation metrics and
the monitored one (:class:`~sct_lesion_classify.train.loop.TrainingObjective`). (Not the card's
``task``, which names what a package does at inference.) Besides what ``fit`` needs, each has
``evaluate(samples, predict)`` and ``evaluable(samples)`` (the samples it can score), which
:func:`~sct_lesion_classify.train.family.train_family` uses for the held-out metrics of the card.

:class:`SegmentationObjective` (cord and lesion families): random patches of sagittal slices on the
model grid (with their sagittal neighbours as further channels for a 2.5D recipe, gathered as
inference gathers them: ``runtime.sagittal.SliceStack``), a share of them from slices without
target; the recipe's loss (Dice + BCE, or BCE
alone: :data:`~sct_lesion_classify.train.recipes.SEGMENTATION_LOSSES`); validation on whole
slices, Dice per subject (monitored, higher is better), and the ratio of predicted to true volume
(a soft Dice term biases it upwards).

:class:`ClassifierObjective` (the three DenseNet121 classifiers): slices drawn in equal halves per
class (a patient first, then one of its slices); BCE loss; validation per patient with the
paper's rule (patient probability = mean of its slice probabilities). The monitored metric is
the recipe's ``selection``:

- ``auc_then_loss`` (the default): the patient AUC, ties broken by the patient log loss
  (``patient_auc_then_loss`` = AUC - 0.001 x min(log loss, 5), so a difference of one pair of
  patients in the AUC always outweighs the loss; AUC 0 when the validation set holds one class);
- ``loss``: the patient log loss alone (a proper score, smoother than the AUC on small sets).

The AUC, log loss and accuracy are logged and reported in the card either way.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.runtime.sagittal import SliceStack, slice_offsets
from sct_lesion_classify.train.augment import Augmenter
from sct_lesion_classify.train.evaluation.metrics import dice, log_loss, roc_auc
from sct_lesion_classify.train.loop import BalancedBatchSampler, Monitor


def _loader(dataset: Any, sampler: BalancedBatchSampler, workers: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                       persistent_workers=False)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


# ------------------------------------------------------------------------------ segmentation
def random_patch(image: np.ndarray, label: np.ndarray, size: tuple[int, int],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` patch of a 2D slice ``(H, W)``, or of its channels ``(C, H, W)``, and of its
    label ``(H, W)`` (zero-padded where the slice is smaller).

    When the slice contains target, the patch contains a random target pixel at a random place;
    otherwise it is placed uniformly.
    """
    pad = [(0, max(0, s - n)) for s, n in zip(size, label.shape)]
    if any(p[1] for p in pad):
        before = [(p[1] // 2, p[1] - p[1] // 2) for p in pad]
        image = np.pad(image, [(0, 0)] * (image.ndim - 2) + before)
        label = np.pad(label, before)
    starts = []
    foreground = np.argwhere(label > 0)
    focus = foreground[int(rng.integers(len(foreground)))] if len(foreground) else None
    for axis, (s, n) in enumerate(zip(size, label.shape)):
        if focus is None:
            starts.append(int(rng.integers(n - s + 1)))
        else:
            low = max(0, int(focus[axis]) - s + 1)
            high = min(n - s, int(focus[axis]))
            starts.append(int(rng.integers(low, high + 1)))
    window = tuple(slice(a, a + s) for a, s in zip(starts, size))
    return image[(Ellipsis,) + window], label[window]


class _SegmentationDataset:
    def __init__(self, volumes: Sequence[Any], items: list[tuple[int, int]], patch: tuple[int, int],
                 augmenter: Augmenter, offsets: tuple[int, ...] = (0,)) -> None:
        self.volumes, self.items, self.patch, self.augmenter = volumes, items, patch, augmenter
        self.stacks = [SliceStack(volume.image, offsets) for volume in volumes]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, Any]:
        import torch

        index, seed = key
        v, s = self.items[index]
        rng = np.random.default_rng(seed)
        image, label = random_patch(self.stacks[v].channels(s), self.volumes[v].label[s],
                                    self.patch, rng)
        image, label = self.augmenter(np.ascontiguousarray(image), label[None].astype(np.float32),
                                      int(rng.integers(2**31)))
        return torch.from_numpy(image), torch.from_numpy(label)


def dice_bce_loss(logits: Any, targets: Any) -> Any:
    """Soft Dice over the whole batch + binary cross-entropy (both on the sigmoid of ``logits``)."""
    import torch.nn.functional as F

    probabilities = logits.sigmoid()
    intersection = (probabilities * targets).sum()
    soft_dice = (2 * intersection + 1.0) / (probabilities.sum() + targets.sum() + 1.0)
    return (1 - soft_dice) + F.binary_cross_entropy_with_logits(logits, targets)


def bce_loss(logits: Any, targets: Any) -> Any:
    """Binary cross-entropy on the sigmoid of ``logits`` (its optimum: the calibrated probability)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, targets)


#: The loss function of each :data:`~sct_lesion_classify.train.recipes.SEGMENTATION_LOSSES` key.
SEGMENTATION_LOSS_FUNCTIONS = {"dice_bce": dice_bce_loss, "bce": bce_loss}


class SegmentationObjective:
    """Cord or lesion segmentation on sagittal slices (see the module docstring)."""

    monitor = Monitor("val_dice", "max")

    def __init__(self, model: Any, recipe: Any, train: Sequence[Any], val: Sequence[Any], *,
                 batch_size: int, steps_per_epoch: int, workers: int = 0) -> None:
        if not train or not val:
            raise InputError(f"{recipe.family}: need at least one training and one validation "
                             f"subject, got {len(train)} and {len(val)}")
        self.model, self.recipe, self.train, self.val = model, recipe, list(train), list(val)
        self.batch_size, self.steps, self.workers = batch_size, steps_per_epoch, workers
        self.loss_function = SEGMENTATION_LOSS_FUNCTIONS[recipe.loss]
        self.items: list[tuple[int, int]] = []
        positive: list[list[int]] = []
        negative: list[list[int]] = []
        for v, volume in enumerate(self.train):
            with_target = set(volume.positive_slices.tolist())
            pos, neg = [], []
            for s in range(volume.image.shape[0]):
                (pos if s in with_target else neg).append(len(self.items))
                self.items.append((v, s))
            positive.append(pos)
            negative.append(neg)
        if not any(positive):
            raise InputError(f"{recipe.family}: no training slice contains {recipe.family} target")
        self.groups = (positive, negative)
        self.offsets = slice_offsets(recipe.input_spec())
        self.dataset = _SegmentationDataset(self.train, self.items, recipe.patch_size,
                                            Augmenter(recipe.augment), self.offsets)

    @staticmethod
    def evaluable(volumes: Sequence[Any]) -> list[Any]:
        """The volumes :meth:`evaluate` can score: all of them."""
        return list(volumes)

    def train_loader(self, epoch: int, seed: int) -> Any:
        sampler = BalancedBatchSampler(self.groups, (1 - self.recipe.empty_fraction,
                                                     self.recipe.empty_fraction),
                                       self.batch_size, self.steps, seed, epoch)
        return _loader(self.dataset, sampler, self.workers)

    def loss(self, logits: Any, targets: Any) -> Any:
        return self.loss_function(logits, targets)

    def batch_metrics(self, logits: Any, targets: Any) -> dict[str, float]:
        return {"dice": dice((logits > 0).cpu().numpy(), targets.cpu().numpy() > 0.5)}

    def validate(self, predict: Callable[[Any], Any]) -> dict[str, float]:
        return self.evaluate(self.val, predict, prefix="val_")

    def evaluate(self, volumes: Sequence[Any], predict: Callable[[Any], Any], prefix: str = ""
                 ) -> dict[str, float]:
        """Mean Dice per subject (whole slices on the model grid, threshold 0.5), the loss, and the
        predicted volume over the true volume of all subjects together (``volume_ratio``)."""
        import torch

        dices, losses = [], []
        predicted_voxels = true_voxels = 0
        for volume in volumes:
            probabilities = np.zeros(volume.image.shape, dtype=np.float32)
            stack = SliceStack(volume.image, self.offsets)
            loss_sum = 0.0
            for window in _chunks(volume.image.shape[0], 4):
                inputs = torch.from_numpy(np.ascontiguousarray(stack.batch(range(window.start, window.stop))))
                logits = predict(inputs)
                targets = torch.from_numpy(volume.label[window, None].astype(np.float32))
                loss_sum += float(self.loss_function(logits, targets)) * inputs.shape[0]
                probabilities[window] = logits.sigmoid().numpy()[:, 0]
            predicted, truth = probabilities >= 0.5, volume.label > 0
            dices.append(dice(predicted, truth))
            losses.append(loss_sum / max(volume.image.shape[0], 1))
            predicted_voxels += int(predicted.sum())
            true_voxels += int(truth.sum())
        return {f"{prefix}dice": float(np.mean(dices)), f"{prefix}loss": float(np.mean(losses)),
                f"{prefix}volume_ratio": predicted_voxels / true_voxels if true_voxels else float("nan"),
                f"{prefix}subjects": float(len(volumes))}


# ------------------------------------------------------------------------------ classifiers
class _ClassifierDataset:
    def __init__(self, subjects: Sequence[Any], items: list[tuple[int, int]], augmenter: Augmenter
                 ) -> None:
        self.subjects, self.items, self.augmenter = subjects, items, augmenter

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, Any]:
        import torch

        index, seed = key
        p, s = self.items[index]
        subject = self.subjects[p]
        slab = subject.slices[s].astype(np.float32)
        image, mask = self.augmenter(slab[:2], slab[2:3], seed)
        if not subject.has_t1c:
            image[0] = 0.0  # the absent cT1w channel stays exactly zero
        sample = np.concatenate([image, mask], axis=0)
        return torch.from_numpy(sample), torch.tensor([float(subject.label)])


#: Probabilities are clipped to [_EPS, 1 - _EPS] in the validation log losses.
_EPS = 1e-7

#: The classifiers' model-selection metrics (``ClassifierRecipe.selection``), as monitored.
CLASSIFIER_MONITORS = {"auc_then_loss": Monitor("val_patient_auc_then_loss", "max"),
                       "loss": Monitor("val_patient_loss", "min")}


def auc_then_loss(auc: float, loss: float) -> float:
    """The ``auc_then_loss`` selection score (see the module docstring)."""
    return (auc if math.isfinite(auc) else 0.0) - 1e-3 * min(loss, 5.0)


class ClassifierObjective:
    """Binary slice classifier with patient-level validation (see the module docstring)."""

    def __init__(self, model: Any, recipe: Any, train: Sequence[Any], val: Sequence[Any], *,
                 batch_size: int, steps_per_epoch: int, workers: int = 0) -> None:
        if recipe.with_t1c and not any(s.has_t1c for s in train):
            raise InputError(f"{recipe.name}: --with-t1c, but no training subject has a cT1w image "
                             "(sub-XX_ce-gad_T1w.nii.gz)")
        self.model, self.recipe = model, recipe
        self.monitor = CLASSIFIER_MONITORS[recipe.selection]
        self.train, self.val = self.evaluable(train), self.evaluable(val)
        for name, subjects in (("training", self.train), ("validation", self.val)):
            labels = {s.label for s in subjects}
            if name == "training" and labels != {0, 1}:
                raise InputError(f"{recipe.name}: the training split needs subjects of both classes "
                                 f"{recipe.classes}, got {sorted(labels)} (1 = {recipe.positive_class})")
            if not subjects:
                raise InputError(f"{recipe.name}: no {name} subject with a lesion")
        self.batch_size, self.steps, self.workers = batch_size, steps_per_epoch, workers
        self.items: list[tuple[int, int]] = []
        groups: tuple[list[list[int]], list[list[int]]] = ([], [])  # class 0, class 1
        for p, subject in enumerate(self.train):
            group = []
            for s in range(len(subject.slice_indices)):
                group.append(len(self.items))
                self.items.append((p, s))
            groups[subject.label].append(group)
        self.groups = groups
        self.dataset = _ClassifierDataset(self.train, self.items, Augmenter(recipe.augment, clip=(0.0, 1.0)))

    @staticmethod
    def evaluable(subjects: Sequence[Any]) -> list[Any]:
        """The subjects :meth:`evaluate` can score: those with at least one lesion slice."""
        return [s for s in subjects if len(s.slice_indices)]

    def train_loader(self, epoch: int, seed: int) -> Any:
        sampler = BalancedBatchSampler(self.groups, (0.5, 0.5), self.batch_size, self.steps, seed, epoch)
        return _loader(self.dataset, sampler, self.workers)

    def loss(self, logits: Any, targets: Any) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits, targets)

    def batch_metrics(self, logits: Any, targets: Any) -> dict[str, float]:
        return {"accuracy": float(((logits > 0).float() == targets).float().mean())}

    def validate(self, predict: Callable[[Any], Any]) -> dict[str, float]:
        return self.evaluate(self.val, predict, prefix="val_")

    @staticmethod
    def slice_probabilities(subject: Any, predict: Callable[[Any], Any]) -> np.ndarray:
        """The network's probability on each lesion slice of ``subject`` (float64)."""
        import torch

        probs = []
        for window in _chunks(len(subject.slice_indices), 16):
            batch = torch.from_numpy(subject.slices[window].astype(np.float32))
            probs.append(predict(batch).sigmoid().numpy()[:, 0])
        return np.concatenate(probs).astype(np.float64)

    def patient_probabilities(self, subjects: Sequence[Any], predict: Callable[[Any], Any]) -> np.ndarray:
        """Per subject (in order), the mean of its slice probabilities: the paper's patient rule
        (the decision head is fitted on them, ``train.decision_head``)."""
        return np.array([self.slice_probabilities(s, predict).mean() for s in subjects], dtype=np.float64)

    def evaluate(self, subjects: Sequence[Any], predict: Callable[[Any], Any], prefix: str = ""
                 ) -> dict[str, float]:
        """Slice and patient metrics; patient probability = mean of the slice probabilities."""
        slice_probs, slice_labels, patient_probs, patient_labels = [], [], [], []
        for subject in subjects:
            probs = self.slice_probabilities(subject, predict)
            slice_probs += probs.tolist()
            slice_labels += [subject.label] * len(probs)
            patient_probs.append(float(probs.mean()))
            patient_labels.append(subject.label)
        correct = [(p >= 0.5) == bool(y) for p, y in zip(patient_probs, patient_labels)]
        patient_loss = log_loss(patient_probs, patient_labels, eps=_EPS)
        patient_auc = roc_auc(patient_labels, patient_probs)
        result = {
            "patient_loss": patient_loss,
            "patient_auc": patient_auc,
            "patient_auc_then_loss": auc_then_loss(patient_auc, patient_loss),
            "patient_accuracy": float(np.mean(correct)),
            "slice_loss": log_loss(slice_probs, slice_labels, eps=_EPS),
            "slice_auc": roc_auc(slice_labels, slice_probs),
            "patients": float(len(subjects)),
            "slices": float(len(slice_probs)),
        }
        return {f"{prefix}{key}": value for key, value in result.items()}


def finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON-safe metrics: NaN/Inf become None; counts become int."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if value is None or not math.isfinite(value):
            out[key] = None
        elif key.endswith(("subjects", "patients", "slices")):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out
