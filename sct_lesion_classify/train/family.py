"""Train one model family on a BIDS dataset and write its model package.

:func:`train_family` is the body of ``sct_lesion_classify train``: discover subjects, split them
per patient, build the family's samples with the same functions inference uses, run
:func:`~sct_lesion_classify.train.loop.fit`, evaluate the best weights on the validation (and,
when the dataset has one, test) subjects, export to ONNX with the parity check, and write the
model card. Checkpoints stay in ``<models dir>/.train_runs/<name>/`` (not part of the package).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sct_lesion_classify.errors import InputError
from sct_lesion_classify.train import data as train_data
from sct_lesion_classify.train.recipes import ClassifierRecipe, SegmentationRecipe

#: The classifiers' CAM output (``train.export.CAM_OUTPUT``; not imported: export imports torch).
CAM_OUTPUT = "cam"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """Command-line options of a training run (None: the recipe's default)."""

    bids: Path
    models_dir: Path
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    val_fraction: float = 0.2
    use_split_column: bool = True
    workers: int = 0
    version: str = "0.1.0"
    command: str = "sct_lesion_classify train"
    progress: bool = True
    bf16: bool | None = None  # None: the recipe's choice on the CPU


@dataclass(frozen=True)
class TrainOutcome:
    """What a run wrote."""

    package_dir: Path
    onnx_path: Path
    card_path: Path
    log_path: Path
    card: dict


def git_commit() -> str:
    """The source tree's commit (``<sha>``, ``<sha>-dirty``), or ``unknown`` outside git."""
    source = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def card_skeleton(recipe: SegmentationRecipe | ClassifierRecipe, version: str) -> dict[str, Any]:
    """The card with the input/output contract filled in (training and metrics placeholders)."""
    segmentation = isinstance(recipe, SegmentationRecipe)
    return {
        "card_version": 1,
        "name": recipe.name,
        "version": version,
        "task": recipe.task,
        "description": recipe.description,
        "architecture": {"name": recipe.architecture, "parameters": 0,
                         "details": dict(recipe.architecture_details) if segmentation else {
                             "implementation": "monai.networks.nets.DenseNet121", "spatial_dims": 2,
                             "in_channels": 3, "out_channels": 1, "output": "sigmoid probability",
                             "loss": "BCE", "sampling": "equal halves per class, patient then slice"}},
        "input": recipe.input_section(),
        "output": {"tensor": "output", "activation": "sigmoid",
                   "classes": ["background", recipe.family] if segmentation else list(recipe.classes),
                   "positive_class": recipe.family if segmentation else recipe.positive_class,
                   **({} if segmentation else {"cam_tensor": CAM_OUTPUT})},
        "postprocessing": dict(recipe.postprocessing) if segmentation else None,
        "decision": None if segmentation else {"aggregation": "mean",
                                               "low_confidence_band": recipe.low_confidence_band},
        "training": {"synthetic_data": False, "data": "", "command": "", "seed": 0, "commit": "",
                     "wall_time_s": 0.0, "device": "cpu", "subjects": {"train": 0, "val": 0},
                     "framework": ""},
        "metrics": {},
        "files": {"onnx": f"{recipe.name}.onnx", "sha256": "0" * 64},
        "license": "MIT",
        "intended_use": recipe.intended_use,
    }


def input_spec(card: dict[str, Any]) -> Any:
    """The card's validated ``input`` section as ``modelpkg.card.InputSpec``."""
    from sct_lesion_classify.modelpkg.card import ModelCard

    return ModelCard.from_json(card, source=f"model card of {card['name']}").input


def train_family(recipe: SegmentationRecipe | ClassifierRecipe, options: TrainOptions) -> TrainOutcome:
    """Train ``recipe`` on ``options.bids``; write ``<models_dir>/<name>/`` (see module docstring)."""
    import torch

    from sct_lesion_classify.io.bids import discover_subjects
    from sct_lesion_classify.train.export import write_package
    from sct_lesion_classify.train.loop import LoopConfig, fit, resolve_device
    from sct_lesion_classify.train.objectives import ClassifierObjective, SegmentationObjective, finite_or_none

    start = time.perf_counter()
    device = resolve_device(options.device)
    defaults = recipe.defaults
    epochs = options.epochs or defaults.epochs
    steps = options.steps_per_epoch or defaults.steps_per_epoch
    batch_size = options.batch_size or defaults.batch_size
    lr = options.lr or defaults.lr
    patience = options.patience or defaults.patience
    bf16 = recipe.cpu_bf16 if options.bf16 is None else options.bf16
    segmentation = isinstance(recipe, SegmentationRecipe)

    card = card_skeleton(recipe, options.version)
    spec = input_spec(card)
    subjects = discover_subjects(options.bids)
    split = train_data.split_subjects(subjects, options.val_fraction, options.seed,
                                      use_split_column=options.use_split_column)
    logger.info("%s: %s", options.bids, split.describe())

    def usable(subject: Any) -> bool:
        needed = [subject.t2w, subject.cord_mask] if segmentation else [subject.t2w, subject.lesion_mask]
        if segmentation and recipe.needs_lesion_mask:
            needed.append(subject.lesion_mask)
        if not segmentation and recipe.label_of(subject.diagnosis) is None:
            return False
        if any(path is None for path in needed):
            logger.warning("%s: skipped for %s (missing image or label)", subject.participant_id,
                           recipe.name)
            return False
        return True

    def prepare(subjects_of_split: tuple[Any, ...]) -> list[Any]:
        from tqdm import tqdm

        prepared = []
        for subject in tqdm([s for s in subjects_of_split if usable(s)], desc="loading",
                            disable=not options.progress, leave=False):
            if segmentation:
                loaded = train_data.load_subject(subject, cord=True, lesion=recipe.needs_lesion_mask)
                prepared.append(train_data.segmentation_volume(loaded, recipe, spec))
            else:
                loaded = train_data.load_subject(subject, lesion=True, t1c=recipe.with_t1c)
                prepared.append(train_data.classifier_subject(
                    loaded, recipe.label_of(subject.diagnosis), spec))
        return prepared

    train_set, val_set, test_set = prepare(split.train), prepare(split.val), prepare(split.test)
    if not segmentation and recipe.with_t1c and not any(s.has_t1c for s in train_set):
        raise InputError(f"{recipe.name}: --with-t1c, but no training subject has a cT1w image "
                         "(sub-XX_ce-gad_T1w.nii.gz)")

    torch.manual_seed(options.seed)
    model = recipe.build_network()
    objective_class = SegmentationObjective if segmentation else ClassifierObjective
    objective = objective_class(model, recipe, train_set, val_set, batch_size=batch_size,
                                steps_per_epoch=steps, workers=options.workers)
    run_dir = Path(options.models_dir) / ".train_runs" / recipe.name
    identity = {"name": recipe.name, "seed": options.seed, "batch_size": batch_size,
                "steps_per_epoch": steps, "bids": str(Path(options.bids).resolve())}
    config = LoopConfig(epochs=epochs, steps_per_epoch=steps, lr=lr, patience=patience,
                        lr_patience=defaults.lr_patience, lr_factor=defaults.lr_factor,
                        min_lr=defaults.min_lr, weight_decay=defaults.weight_decay, seed=options.seed,
                        device=options.device, bf16=bf16,
                        channels_last=recipe.channels_last, run_dir=run_dir, resume=options.resume,
                        progress=options.progress, identity=identity)
    fit_start = time.perf_counter()
    result = fit(objective, config)
    fit_session_s = time.perf_counter() - fit_start

    def predict(inputs: Any) -> Any:  # float32, as exported
        model.eval()
        with torch.no_grad():
            return model(inputs.to(device)).float().cpu()

    metrics: dict[str, Any] = {
        "held_out_split": "val",
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "monitor": objective.monitor.name,
        "val": finite_or_none(objective.evaluate(val_set, predict)),
        "seconds_per_training_step": round(result.seconds_per_step, 4),
    }
    if test_set and (segmentation or any(len(s.slice_indices) for s in test_set)):
        metrics["test"] = finite_or_none(objective.evaluate(
            test_set if segmentation else [s for s in test_set if len(s.slice_indices)], predict))

    model = model.to("cpu").float().eval()
    n_parameters = int(sum(p.numel() for p in model.parameters()))
    card["architecture"]["parameters"] = n_parameters
    import monai

    threads = torch.get_num_threads()
    card["training"] = {
        "synthetic_data": train_data.is_synthetic(options.bids),
        "data": (f"BIDS dataset {Path(options.bids).resolve().name}: "
                 f"{train_data.describe_subjects(subjects)}; {split.describe()}; this model: "
                 f"{len(train_set)} train / {len(val_set)} val / {len(test_set)} test subjects"),
        "command": options.command,
        "seed": options.seed,
        "commit": git_commit(),
        "wall_time_s": _wall_time_s(start, result, fit_session_s),
        "device": (f"{device.type} ({platform.machine()}, {threads} threads"
                   + (", bf16 autocast" if result.bf16 else ", float32")
                   + (", channels_last" if config.channels_last else "") + ")"),
        "subjects": {"train": len(train_set), "val": len(val_set)},
        "framework": f"PyTorch {torch.__version__}, MONAI {monai.__version__}",
    }
    card["metrics"] = metrics
    folder = Path(options.models_dir) / recipe.name
    from sct_lesion_classify.train.export import CAM_OUTPUT as cam_output
    from sct_lesion_classify.train.export import with_cam, with_sigmoid

    assert cam_output == CAM_OUTPUT
    hw = tuple(recipe.patch_size) if segmentation else tuple(recipe.spatial_size)
    exported = write_package(folder, recipe.name, with_sigmoid(model) if segmentation else with_cam(model),
                             card, in_channels=1 if segmentation else 3,
                             example_hw=hw, dynamic_hw=segmentation,
                             divisible_by=spec.size_divisible_by, seed=options.seed,
                             extra_outputs=() if segmentation else (CAM_OUTPUT,))
    log_path = folder / f"{recipe.name}_training_log.csv"
    shutil.copyfile(result.log_path, log_path)
    import json

    final = json.loads(exported.card_path.read_text(encoding="utf-8"))
    logger.info("wrote %s (%s parameters; ONNX parity %.2g; %s)", folder, f"{n_parameters:,}",
                exported.parity_max_abs_diff, ", ".join(f"{k} {v}" for k, v in metrics["val"].items()))
    return TrainOutcome(folder, exported.onnx_path, exported.card_path, log_path, final)


def _wall_time_s(start: float, result: Any, fit_session_s: float) -> float:
    """The card's ``training.wall_time_s``: the whole training, over every ``--resume``.

    The training loop's time (training and validation epochs) accumulates in the checkpoint across
    resumed sessions (``result.wall_time_s``); to it is added this session's time outside the loop
    (loading data, held-out evaluation, export). A ``--resume`` of a finished run (which only
    re-exports the best checkpoint) thus reports the time that trained the weights plus the
    re-export, not just the re-export.
    """
    outside_loop = max(time.perf_counter() - start - fit_session_s, 0.0)
    return round(float(result.wall_time_s) + outside_loop, 1)


def with_overrides(recipe: Any, **changes: Any) -> Any:
    """A copy of a recipe with some fields changed (tests: small patches or slices)."""
    return replace(recipe, **changes)
