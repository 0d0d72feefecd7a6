"""Train one model family on a BIDS dataset and write its model package.

:func:`train_family` is the body of ``sct_lesion_classify train``: discover subjects, split them
per patient, build the family's samples with the same functions inference uses, run
:func:`~sct_lesion_classify.train.loop.fit` on the family's objective, evaluate the best weights
on the validation (and, when the dataset has one, test) subjects, fit a classifier's decision head
on the validation patients (:mod:`~sct_lesion_classify.train.decision_head`: temperature scaling,
then the late fusion with the morphometry), export to ONNX with the parity check, and write the
model card. Checkpoints stay in ``<models dir>/.train_runs/<name>/`` (not
part of the package).

Everything that differs between families is a method of the recipe
(:class:`~sct_lesion_classify.train.recipes.Recipe`); the card is built from the card's own
dataclasses (:mod:`sct_lesion_classify.modelpkg.card`) and written with their ``to_json``.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from sct_lesion_classify.modelpkg.card import (
    CARD_VERSION, Architecture, Files, InputSpec, ModelCard, Subjects, Training, TrainingDataRanges,
)
from sct_lesion_classify.modelpkg.package import file_sha256
from sct_lesion_classify.train import data as train_data
from sct_lesion_classify.train.export import ExportResult, write_package
from sct_lesion_classify.train.input_cache import InputCache
from sct_lesion_classify.train.loop import FitResult, LoopConfig, fit, resolve_device
from sct_lesion_classify.train.objectives import finite_or_none
from sct_lesion_classify.train.recipes import Hyperparameters, Recipe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """Command-line options of a training run (None: the recipe's default).

    ``bids`` is one BIDS dataset or several (e.g. phantoms of the realistic and the randomised
    style): each is split on its own (its participants.tsv), and the splits are joined.
    ``cache_inputs``: keep the model inputs in ``<models_dir>/.train_runs/inputs`` (classifiers).
    ``init_from``: start from the weights of this checkpoint (``best.pt`` or ``last.pt`` of an
    earlier run of the same family) or model package folder (its ONNX weights,
    :mod:`sct_lesion_classify.train.package_weights`) instead of a random initialization:
    fine-tuning, with a new optimizer and schedule.
    """

    bids: Path | tuple[Path, ...]
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
    cache_inputs: bool = True
    init_from: Path | None = None

    @property
    def datasets(self) -> tuple[Path, ...]:
        """The BIDS dataset(s), as a tuple."""
        if isinstance(self.bids, (tuple, list)):
            return tuple(Path(path) for path in self.bids)
        return (Path(self.bids),)


@dataclass(frozen=True)
class TrainOutcome:
    """What a run wrote."""

    package_dir: Path
    onnx_path: Path
    card_path: Path
    log_path: Path
    card: dict


@dataclass(frozen=True)
class TrainingData:
    """The dataset's subjects, their split, and the family's samples per split."""

    subjects: tuple[Any, ...]
    split: train_data.SubjectSplit
    train: list[Any]
    val: list[Any]
    test: list[Any]

    def describe(self, bids: Path | Sequence[Path]) -> str:
        """The card's ``training.data``: dataset(s), diagnoses, split, and this model's subjects."""
        datasets = [bids] if isinstance(bids, (str, Path)) else list(bids)
        names = " + ".join(Path(path).resolve().name for path in datasets)
        return (f"BIDS dataset{'s' if len(datasets) > 1 else ''} {names}: "
                f"{train_data.describe_subjects(self.subjects)}; {self.split.describe()}; this model: "
                f"{len(self.train)} train / {len(self.val)} val / {len(self.test)} test subjects")


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


def card_skeleton(recipe: Recipe, version: str) -> ModelCard:
    """The recipe's card: its input/output contract, placeholders for training, metrics and files.

    Checked against the schema and the consistency rules now, before any training.
    """
    card = ModelCard(
        card_version=CARD_VERSION,
        name=recipe.name,
        version=version,
        task=recipe.task,
        description=recipe.description,
        architecture=Architecture(name=recipe.architecture, parameters=0,
                                  details=dict(recipe.architecture_details)),
        input=recipe.input_spec(),
        output=recipe.output_spec(),
        postprocessing=recipe.postprocessing,
        decision=recipe.decision,
        training=Training(synthetic_data=False, data="", command="", seed=0, commit="",
                          wall_time_s=0.0, device="cpu", subjects=Subjects(train=0, val=0),
                          framework=""),
        metrics={},
        files=Files(onnx=f"{recipe.name}.onnx", sha256="0" * 64),
        license="MIT",
        intended_use=recipe.intended_use,
    )
    ModelCard.from_json(card.to_json(), source=f"model card of {recipe.name}")
    return card


def hyperparameters(recipe: Recipe, options: TrainOptions) -> Hyperparameters:
    """The recipe's defaults, with the options that were given (not None, not 0)."""
    given = {name: getattr(options, name) for name in
             ("epochs", "steps_per_epoch", "batch_size", "lr", "patience") if getattr(options, name)}
    return replace(recipe.defaults, **given)


def load_training_data(recipe: Recipe, options: TrainOptions, input_spec: InputSpec) -> TrainingData:
    """Discover and split the subjects; load the samples of those the family can use."""
    from tqdm import tqdm

    subjects, split = train_data.split_datasets(options.datasets, options.val_fraction, options.seed,
                                                use_split_column=options.use_split_column)
    cache = (InputCache(Path(options.models_dir) / ".train_runs" / "inputs")
             if options.cache_inputs else None)

    def prepare(subjects_of_split: tuple[Any, ...]) -> list[Any]:
        usable = [subject for subject in subjects_of_split if recipe.usable(subject)]
        return [recipe.load_sample(subject, input_spec, cache) for subject in
                tqdm(usable, desc="loading", disable=not options.progress, leave=False)]

    data = TrainingData(subjects, split, prepare(split.train), prepare(split.val),
                        prepare(split.test))
    if cache is not None and cache.hits + cache.misses:
        logger.info("model inputs: %d from the cache, %d built (%s)", cache.hits, cache.misses,
                    cache.folder)
    return data


def prepare_inputs(recipe: Recipe, options: TrainOptions) -> int:
    """Build the model inputs of ``recipe`` into the input cache, without training.

    The classifiers of one input contract share their inputs: preparing them once lets the
    families then train side by side from the cache instead of each building the same files.

    Returns
    -------
    int
        The number of subjects whose inputs are now in the cache.

    Raises
    ------
    InputError
        ``options.cache_inputs`` is off, or the family keeps no input cache (segmentation).
    """
    from sct_lesion_classify.errors import InputError

    if not options.cache_inputs:
        raise InputError("--prepare-inputs needs the input cache (drop --no-input-cache)")
    if not recipe.caches_inputs:
        raise InputError(f"--prepare-inputs applies to the classifiers, not to {recipe.family}")
    data = load_training_data(recipe, options, recipe.input_spec())
    return len(data.train) + len(data.val) + len(data.test)


def loop_config(recipe: Recipe, options: TrainOptions, settings: Hyperparameters) -> LoopConfig:
    """The :class:`~sct_lesion_classify.train.loop.LoopConfig` of the run."""
    identity = {"name": recipe.name, "seed": options.seed, "batch_size": settings.batch_size,
                "steps_per_epoch": settings.steps_per_epoch,
                "bids": str(options.datasets[0].resolve()) if len(options.datasets) == 1
                else [str(path.resolve()) for path in options.datasets]}
    if options.init_from is not None:  # a resume must start from the same weights and loss
        identity.update(init_sha256=initial_weights_sha256(options.init_from),
                        loss=getattr(recipe, "loss", None))
    if getattr(recipe, "neighbour_slices", 0):  # and a 2.5D run from the same input channels
        identity.update(neighbour_slices=recipe.neighbour_slices)
    if recipe.augment.curve_prob:  # and one with intensity curves from the same augmentation
        identity.update(intensity_curve_prob=recipe.augment.curve_prob)
    if recipe.augment.paint_prob:  # and one with painted lesions
        identity.update(painted_lesion_prob=recipe.augment.paint_prob)
    return LoopConfig(epochs=settings.epochs, steps_per_epoch=settings.steps_per_epoch,
                      lr=settings.lr, patience=settings.patience, lr_patience=settings.lr_patience,
                      lr_factor=settings.lr_factor, min_lr=settings.min_lr,
                      weight_decay=settings.weight_decay, schedule=settings.schedule,
                      warmup_epochs=settings.warmup_epochs, seed=options.seed, device=options.device,
                      bf16=recipe.cpu_bf16 if options.bf16 is None else options.bf16,
                      channels_last=recipe.channels_last,
                      run_dir=Path(options.models_dir) / ".train_runs" / recipe.name,
                      resume=options.resume, progress=options.progress, identity=identity)


def train_family(recipe: Recipe, options: TrainOptions) -> TrainOutcome:
    """Train ``recipe`` on ``options.bids``; write ``<models_dir>/<name>/`` (see module docstring)."""
    import torch

    start = time.perf_counter()
    device = resolve_device(options.device)
    settings = hyperparameters(recipe, options)
    card = card_skeleton(recipe, options.version)
    data = load_training_data(recipe, options, card.input)

    torch.manual_seed(options.seed)
    model = recipe.build_network()
    config = loop_config(recipe, options, settings)
    if options.init_from is not None:
        origin = load_initial_weights(model, options.init_from, expected_name=recipe.name)
        card = replace(card, architecture=replace(card.architecture, details={
            **card.architecture.details, "initial_weights": origin}))
    objective = recipe.objective_class(model, recipe, data.train, data.val,
                                       batch_size=settings.batch_size,
                                       steps_per_epoch=settings.steps_per_epoch,
                                       workers=options.workers)
    fit_start = time.perf_counter()
    result = fit(objective, config)
    fit_session_s = time.perf_counter() - fit_start
    predict = _predictor(model, device)
    metrics = held_out_metrics(objective, result, data, predict)
    if card.decision is not None:  # classifiers: calibration and fusion, on the validation split
        card, metrics = with_decision_head(card, metrics, objective, data, predict)

    model = model.to("cpu").float().eval()
    n_parameters = int(sum(p.numel() for p in model.parameters()))
    training = Training(
        synthetic_data=all(train_data.is_synthetic(path) for path in options.datasets),
        data=data.describe(options.datasets),
        command=options.command,
        seed=options.seed,
        commit=git_commit(),
        wall_time_s=_wall_time_s(start, result, fit_session_s),
        device=_device_description(device, result.bf16, config.channels_last),
        subjects=Subjects(train=len(data.train), val=len(data.val)),
        framework=_framework(),
    )
    card = replace(card, architecture=replace(card.architecture, parameters=n_parameters),
                   training=training, metrics=metrics, training_data=acquisition_ranges(data))
    folder = Path(options.models_dir) / recipe.name
    exported = export_package(recipe, model, card, folder, options.seed)
    log_path = folder / f"{recipe.name}_training_log.csv"
    shutil.copyfile(result.log_path, log_path)
    final = json.loads(exported.card_path.read_text(encoding="utf-8"))
    logger.info("wrote %s (%s parameters; ONNX parity %.2g; %s)", folder, f"{n_parameters:,}",
                exported.parity_max_abs_diff, ", ".join(f"{k} {v}" for k, v in metrics["val"].items()))
    return TrainOutcome(folder, exported.onnx_path, exported.card_path, log_path, final)


def initial_weights_sha256(path: Path) -> str:
    """The sha256 that identifies ``--init-from``: the checkpoint file's, or a package's ONNX file's
    (checked against its card when the weights are loaded)."""
    if Path(path).is_dir():
        from sct_lesion_classify.modelpkg.package import ModelPackage

        return ModelPackage.load(path, verify=False).sha256
    return file_sha256(path)


def load_initial_weights(model: Any, path: Path, *, expected_name: str | None = None) -> str:
    """Load initial weights into ``model`` and return where they came from, for the card.

    ``path`` is a checkpoint (``best.pt``: a state dict; ``last.pt``: its ``model`` entry) or a
    model package folder (``<name>.json`` + ``<name>.onnx``, verified against its sha256; its
    name must be ``expected_name``): see :mod:`sct_lesion_classify.train.package_weights`.

    Raises
    ------
    InputError
        The file cannot be read as a checkpoint, or its weights do not fit the family's network.
    ModelError
        A package folder that is not a valid package or fails its sha256 check.
    """
    import zipfile

    import torch

    from sct_lesion_classify.errors import InputError
    from sct_lesion_classify.train.package_weights import load_package_weights, widen_input_weights

    if Path(path).is_dir():
        return load_package_weights(model, path, expected_name=expected_name)
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise InputError(f"--init-from {path}: not a readable PyTorch checkpoint (not a zip archive)")
    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load raises RuntimeError, OSError or, for an
        # object weights_only refuses, the unpickler's error: each is the same bad input here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"--init-from {path}: not a readable PyTorch checkpoint ({first})") from None
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError(f"--init-from {path}: no model weights in this checkpoint")
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    for name, value in list(state.items()):  # a one-slice network's weights into a 2.5D network
        if isinstance(value, torch.Tensor) and tuple(value.shape) != shapes.get(name, tuple(value.shape)):
            wide = widen_input_weights({name: value.float().numpy()}, shapes)[name]
            state[name] = torch.from_numpy(wide).to(value.dtype)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"--init-from {path}: the weights do not fit this family's network "
                         f"({first})") from None
    logger.info("initial weights from %s", path)
    return f"{path} (sha256 {file_sha256(path)})"


def acquisition_ranges(data: TrainingData) -> TrainingDataRanges | None:
    """The card's ``training_data``: the acquisitions of the training subjects
    (:func:`sct_lesion_classify.trust.acquisition.training_data_ranges`); None, with a warning,
    when a measure cannot be taken on any of them (e.g. no cord masks)."""
    from sct_lesion_classify.trust.acquisition import training_data_ranges

    try:
        return training_data_ranges(data.split.train)
    except ValueError as exc:
        logger.warning("no training_data section in the card (%s): the acquisition trust checks "
                       "will be skipped for this model", exc)
        return None


def with_decision_head(card: ModelCard, metrics: dict[str, Any], objective: Any, data: TrainingData,
                       predict: Callable[[Any], Any]) -> tuple[ModelCard, dict[str, Any]]:
    """The card with its decision head fitted on the validation patients
    (:func:`~sct_lesion_classify.train.decision_head.fit_decision_head`: ``decision.calibration``
    and ``fusion``, each None when it could not be fitted), and the metrics with the head's
    figures (ECE before and after calibration, fused AUC and accuracy) added to each split's."""
    from sct_lesion_classify.train.decision_head import fit_decision_head

    head = fit_decision_head(objective, data, predict)
    metrics = {**metrics, **{split: {**metrics.get(split, {}), **values} for split, values in head.metrics.items()}}
    card = replace(card, decision=replace(card.decision, calibration=head.calibration), fusion=head.fusion)
    return card, metrics


def held_out_metrics(objective: Any, result: FitResult, data: TrainingData,
                     predict: Callable[[Any], Any]) -> dict[str, Any]:
    """The card's ``metrics``: the run, and the best weights on the validation and test sets."""
    metrics: dict[str, Any] = {
        "held_out_split": "val",
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "monitor": objective.monitor.name,
        # the subjects validation scored during training (objective.val): evaluable ones only
        "val": finite_or_none(objective.evaluate(objective.evaluable(data.val), predict)),
        "seconds_per_training_step": round(result.seconds_per_step, 4),
    }
    test = objective.evaluable(data.test)
    if test:
        metrics["test"] = finite_or_none(objective.evaluate(test, predict))
    return metrics


def export_package(recipe: Recipe, model: Any, card: ModelCard, folder: Path, seed: int
                   ) -> ExportResult:
    """Write the package (:func:`~sct_lesion_classify.train.export.write_package`).

    The export follows the card: its input channels, dynamic height and width when the input has
    no fixed ``spatial_size``, and the CAM output when ``output.cam_tensor`` names one.
    """
    spec, cam = card.input, card.output.cam_tensor
    return write_package(folder, recipe.name, recipe.export_network(model), card.to_json(),
                         in_channels=spec.n_channels, example_hw=recipe.example_hw,
                         dynamic_hw=spec.spatial_size is None,
                         divisible_by=spec.size_divisible_by, seed=seed,
                         extra_outputs=() if cam is None else (cam,))


def _predictor(model: Any, device: Any) -> Callable[[Any], Any]:
    """``inputs -> logits`` of ``model`` in eval mode on ``device``, float32 on the CPU (as exported)."""
    import torch

    def predict(inputs: Any) -> Any:
        model.eval()
        with torch.no_grad():
            return model(inputs.to(device)).float().cpu()

    return predict


def _device_description(device: Any, bf16: bool, channels_last: bool) -> str:
    """The card's ``training.device``: ``cpu (x86_64, 2 threads, float32)``."""
    import torch

    return (f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads"
            + (", bf16 autocast" if bf16 else ", float32")
            + (", channels_last" if channels_last else "") + ")")


def _framework() -> str:
    import monai
    import torch

    return f"PyTorch {torch.__version__}, MONAI {monai.__version__}"


def _wall_time_s(start: float, result: FitResult, fit_session_s: float) -> float:
    """The card's ``training.wall_time_s``: the whole training, over every ``--resume``.

    The training loop's time (training and validation epochs) accumulates in the checkpoint across
    resumed sessions (``result.wall_time_s``); to it is added this session's time outside the loop
    (loading data, held-out evaluation, export). A ``--resume`` of a finished run (which only
    re-exports the best checkpoint) thus reports the time that trained the weights plus the
    re-export, not just the re-export.
    """
    outside_loop = max(time.perf_counter() - start - fit_session_s, 0.0)
    return round(float(result.wall_time_s) + outside_loop, 1)
