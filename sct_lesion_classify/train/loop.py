"""The generic training loop: balanced batches, Adam, a learning-rate schedule (reduced on a
validation plateau, or warm-up then cosine decay), early stopping on validation, best checkpoint,
resume, CSV log, progress bar.

A family plugs in through :class:`TrainingObjective` (its data, loss and validation); :func:`fit` does
the rest. Checkpoints are plain ``state_dict`` files written with ``torch.save`` and read with
``torch.load(..., weights_only=True)`` (no pickled code):

- ``<run_dir>/best.pt``: the weights of the best validation epoch;
- ``<run_dir>/last.pt``: weights, optimizer, scheduler, epoch, early-stopping state and the
  sampler position, so ``resume=True`` continues exactly where the run stopped;
- ``<run_dir>/training_log.csv``: one row per epoch (rewritten atomically after each epoch).

Randomness: batch composition and augmentation of epoch ``e`` are drawn from
``SeedSequence([seed, e])`` (:class:`BalancedBatchSampler`), so a resumed run draws the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from sct_lesion_classify.errors import InputError, ProcessingError
from sct_lesion_classify.io.atomic import write_text_atomic

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ sampling
class BalancedBatchSampler:
    """Batches with a fixed share of each class, drawing a group (patient) first, then an item.

    Parameters
    ----------
    groups
        ``groups[c]`` is the list of groups of class ``c``; each group is a list of item indices
        (e.g. the slices of one patient). Empty groups are ignored.
    fractions
        Share of each class in a batch (normalised to sum to 1); the paper's classifiers draw
        equal halves per class, the segmentation families a share of slices without target.
    batch_size, steps
        Items per batch and batches per epoch.
    seed, epoch
        The draw of an epoch depends on ``(seed, epoch)`` only.

    Yields lists of ``(item_index, sample_seed)`` pairs (the dataset augments each item with its
    own seed).
    """

    def __init__(self, groups: Sequence[Sequence[Sequence[int]]], fractions: Sequence[float],
                 batch_size: int, steps: int, seed: int, epoch: int = 0) -> None:
        if len(groups) != len(fractions):
            raise ValueError("one fraction per class is needed")
        kept = [[list(g) for g in class_groups if len(g)] for class_groups in groups]
        live = [(c, f) for c, f in enumerate(fractions) if f > 0 and kept[c]]
        if not live:
            raise ProcessingError("no training samples to draw from")
        total = sum(f for _, f in live)
        self.groups = kept
        self.fractions = [(c, f / total) for c, f in live]
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.seed = int(seed)
        self.epoch = int(epoch)

    def counts(self) -> list[tuple[int, int]]:
        """(class, items per batch): largest remainder rounding, every live class at least 1."""
        raw = [(c, f * self.batch_size) for c, f in self.fractions]
        counts = {c: int(math.floor(x)) for c, x in raw}
        rest = self.batch_size - sum(counts.values())
        for c, x in sorted(raw, key=lambda item: item[1] - math.floor(item[1]), reverse=True)[:rest]:
            counts[c] += 1
        return list(counts.items())

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        counts = self.counts()
        for _ in range(self.steps):
            batch: list[tuple[int, int]] = []
            for c, n in counts:
                class_groups = self.groups[c]
                for _ in range(n):
                    group = class_groups[int(rng.integers(len(class_groups)))]
                    batch.append((group[int(rng.integers(len(group)))], int(rng.integers(2**31))))
            order = rng.permutation(len(batch))
            yield [batch[i] for i in order]


# ------------------------------------------------------------------------------- objective
@dataclass(frozen=True)
class Monitor:
    """The validation metric that selects the best epoch and drives early stopping."""

    name: str
    mode: str  # "min" or "max"

    def better(self, value: float, best: float | None) -> bool:
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value < best if self.mode == "min" else value > best


class TrainingObjective(Protocol):
    """What :func:`fit` needs from a model family."""

    model: Any
    monitor: Monitor

    def train_loader(self, epoch: int, seed: int) -> Iterable[tuple[Any, Any]]:
        """The batches ``(inputs, targets)`` of one epoch (CPU tensors)."""

    def loss(self, logits: Any, targets: Any) -> Any:
        """Scalar training loss (float32) from the network's logits."""

    def batch_metrics(self, logits: Any, targets: Any) -> dict[str, float]:
        """Cheap metrics of one training batch, averaged into the progress bar and log."""

    def validate(self, predict: Callable[[Any], Any]) -> dict[str, float]:
        """Validation metrics; ``predict(inputs)`` returns float32 logits on the CPU."""


@dataclass(frozen=True)
class LoopConfig:
    """Settings of :func:`fit`."""

    epochs: int
    steps_per_epoch: int
    lr: float
    patience: int
    lr_patience: int
    run_dir: Path
    seed: int = 0
    device: str = "cpu"
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    #: ``plateau``: ReduceLROnPlateau on the monitored metric (``lr_factor``, ``lr_patience``);
    #: ``cosine``: linear warm-up over the first ``warmup_epochs`` then cosine decay to ``min_lr``
    #: at the last epoch, stepped every batch.
    schedule: str = "plateau"
    warmup_epochs: int = 1
    bf16: bool = False
    channels_last: bool = False
    resume: bool = False
    progress: bool = True
    identity: dict = field(default_factory=dict)  # stored in last.pt; a resume must match it


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit` (the model holds the best weights afterwards)."""

    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    stopped_early: bool
    wall_time_s: float
    log_path: Path
    best_path: Path
    seconds_per_step: float
    bf16: bool
    epochs_this_session: int = 0  # 0 for a --resume of a finished run (nothing trained)


def resolve_device(name: str) -> Any:
    """``torch.device`` for ``cpu`` or ``cuda`` (an error when CUDA is asked but absent)."""
    import torch

    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available to PyTorch here "
                             f"(torch {torch.__version__}); use --device cpu")
        return torch.device("cuda")
    if name != "cpu":
        raise InputError(f"--device must be cpu or cuda, got {name!r}")
    return torch.device("cpu")


def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX).

    Without it, bf16 autocast is emulated and far slower than float32 (measured on an AVX2-only
    CPU: a DenseNet121 step of 4 slices at 256 x 256 took > 75 s in bf16, 3 s in float32).
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def effective_bf16(device: Any, requested: bool) -> bool:
    """bf16 autocast in use: on CUDA when the GPU supports it; on the CPU when asked and native."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(requested) and cpu_bf16_native()


def autocast_context(device: Any, bf16: bool) -> Any:
    """bf16 autocast when ``bf16`` (see :func:`effective_bf16`), else a no-op context."""
    import torch

    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit(objective: TrainingObjective, config: LoopConfig) -> FitResult:
    """Train ``objective.model``; keep the best weights; return what happened.

    Adam, the learning-rate schedule of ``config.schedule``, early stopping after ``patience``
    epochs without improvement of the monitored validation metric, checkpoints and CSV log in
    ``config.run_dir``.
    """
    import torch
    from tqdm import tqdm

    device = resolve_device(config.device)
    bf16 = effective_bf16(device, config.bf16)
    if config.bf16 and not bf16:
        logger.info("bf16 autocast off: this CPU has no native bf16 (float32 is faster here)")
    torch.manual_seed(config.seed)
    model = objective.model.to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _scheduler(torch, optimizer, objective.monitor, config)
    per_step = config.schedule == "cosine"
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path, log_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "training_log.csv"

    state = {"epoch": -1, "best": None, "best_epoch": -1, "bad_epochs": 0, "stopped": False,
             "elapsed_s": 0.0, "best_metrics": {}, "step_time_sum": 0.0, "steps": 0}
    rows: list[dict[str, Any]] = []
    if config.resume and last_path.exists():
        checkpoint = torch.load(last_path, map_location=device, weights_only=True)
        if checkpoint.get("identity") != config.identity:
            raise InputError(f"{last_path}: --resume of a different run ({checkpoint.get('identity')}"
                             f" vs {config.identity}); use another output folder")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state.update(checkpoint["state"])
        rows = _read_log(log_path)[: state["epoch"] + 1]
        logger.info("resuming %s after epoch %d (best %s = %s at epoch %d)", run_dir,
                    state["epoch"] + 1, objective.monitor.name, state["best"], state["best_epoch"] + 1)
    elif config.resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", run_dir)

    def predict(inputs: Any) -> Any:
        model.eval()
        with torch.no_grad(), autocast_context(device, bf16):
            out = model(inputs.to(device, non_blocking=True).contiguous(memory_format=memory_format))
        return out.float().cpu()

    start = time.perf_counter() - float(state["elapsed_s"])
    epochs_this_session = 0
    for epoch in range(state["epoch"] + 1, config.epochs):
        if state["stopped"]:
            break
        model.train()
        epochs_this_session += 1
        sums: dict[str, float] = {}
        n_batches = 0
        epoch_start = time.perf_counter()
        bar = tqdm(objective.train_loader(epoch, config.seed), total=config.steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False, dynamic_ncols=True)
        for inputs, targets in bar:
            step_start = time.perf_counter()
            inputs = inputs.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            targets = targets.to(device, non_blocking=True)
            with autocast_context(device, bf16):
                logits = model(inputs)
            logits = logits.float()
            loss = objective.loss(logits, targets)
            if not torch.isfinite(loss):
                raise ProcessingError(f"training diverged at epoch {epoch + 1}: loss is {loss.item()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if per_step:
                scheduler.step()
            state["step_time_sum"] += time.perf_counter() - step_start
            state["steps"] += 1
            n_batches += 1
            metrics = {"loss": float(loss.item()), **objective.batch_metrics(logits.detach(), targets)}
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix({key: f"{value / n_batches:.4f}" for key, value in sums.items()})
        bar.close()
        train_metrics = {f"train_{key}": value / max(n_batches, 1) for key, value in sums.items()}
        val_metrics = objective.validate(predict)
        value = float(val_metrics[objective.monitor.name])
        if not per_step:
            scheduler.step(value)
        improved = objective.monitor.better(value, state["best"])
        if improved:
            state.update(best=value, best_epoch=epoch, bad_epochs=0, best_metrics=dict(val_metrics))
            _save(torch, model.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["elapsed_s"] = time.perf_counter() - start
        state["stopped"] = state["bad_epochs"] >= config.patience
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **train_metrics,
               **val_metrics, "best": int(improved), "epoch_time_s": round(time.perf_counter() - epoch_start, 3)}
        rows.append(row)
        _write_log(log_path, rows)
        _save(torch, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "state": dict(state),
                      "identity": config.identity}, last_path)
        logger.info("epoch %d/%d: %s; %s %s%s", epoch + 1, config.epochs,
                    ", ".join(f"{k} {v:.4f}" for k, v in train_metrics.items()),
                    ", ".join(f"{k} {v:.4f}" for k, v in val_metrics.items()),
                    "(best)" if improved else f"({state['bad_epochs']} without improvement)",
                    "; early stop" if state["stopped"] else "")
    if not best_path.exists():
        raise ProcessingError(f"{run_dir}: no epoch produced a finite {objective.monitor.name}; "
                              "nothing to export")
    model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    model.to(memory_format=torch.contiguous_format)
    return FitResult(
        best_epoch=int(state["best_epoch"]) + 1,
        best_metrics={k: float(v) for k, v in state["best_metrics"].items()},
        epochs_run=int(state["epoch"]) + 1,
        stopped_early=bool(state["stopped"]),
        wall_time_s=float(state["elapsed_s"]),
        log_path=log_path,
        best_path=best_path,
        seconds_per_step=float(state["step_time_sum"]) / max(int(state["steps"]), 1),
        bf16=bf16,
        epochs_this_session=epochs_this_session,
    )


def _scheduler(torch: Any, optimizer: Any, monitor: Monitor, config: LoopConfig) -> Any:
    """The learning-rate scheduler of ``config.schedule`` (see :class:`LoopConfig`)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=monitor.mode, factor=config.lr_factor, patience=config.lr_patience,
            min_lr=config.min_lr)
    if config.schedule != "cosine":
        raise InputError(f"unknown learning-rate schedule {config.schedule!r} (plateau or cosine)")
    total = max(config.epochs * config.steps_per_epoch, 1)
    warmup = min(max(config.warmup_epochs, 0) * config.steps_per_epoch, total - 1)
    floor = min(config.min_lr / config.lr, 1.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save(torch: Any, obj: Any, path: Path) -> None:
    from sct_lesion_classify.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(path, buffer.getvalue())


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(row) for row in csv.DictReader(handle)]
