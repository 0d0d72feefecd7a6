"""What each model family is: its input contract, network, data and training defaults.

One frozen dataclass instance per family, listed in :data:`RECIPES`. The training command looks a
family up by name in that table and everything else follows from the object's fields (no
``if name == ...`` anywhere): which mask is the target, the crop margins, the spacing, which
diagnoses a classifier sees and which class is positive.

The two recipe classes, :class:`SegmentationRecipe` and :class:`ClassifierRecipe`, answer the same
questions with the same methods (the :class:`Recipe` protocol), so
:func:`~sct_lesion_classify.train.family.train_family` never asks which kind it holds:

- the model card's contract, as the card's own dataclasses: :meth:`~Recipe.input_spec`,
  :meth:`~Recipe.output_spec`, ``postprocessing``, ``decision``, ``architecture_details``;
- the data: :meth:`~Recipe.usable` (a subject has what the family needs),
  :meth:`~Recipe.load_sample` (its training sample, built by the functions inference uses);
- the training objective (:mod:`~sct_lesion_classify.train.objectives`): ``objective_class``;
- the export: ``export_network`` (the network with its output activation, and for classifiers
  the class-activation map :data:`CAM_OUTPUT`) and ``example_hw``.

Families and package names:

============================  ==============================  ============================
family                        package name                    positive class
============================  ==============================  ============================
``cord``                      ``cord_localizer``              (cord mask)
``lesion``                    ``lesion_multiresunet``         (lesion mask)
``tumor_vs_demyelinating``    ``tumor_vs_demyelinating``      ``tumor``
``astrocytoma_vs_ependymoma`` ``astrocytoma_vs_ependymoma``   ``ependymoma``
``ms_vs_nmosd``               ``ms_vs_nmosd``                 ``NMOSD``
============================  ==============================  ============================

``--with-t1c`` gives a classifier's cT1w variant (:meth:`ClassifierRecipe.t1c_variant`, package
name ``<name>_t1c``), whose first channel is the cT1w image instead of zeros.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np

from sct_lesion_classify.classify.inputs import CHANNEL_NAMES, T2W_ONLY_CHANNEL_NAMES
from sct_lesion_classify.errors import InputError
from sct_lesion_classify.modelpkg.card import (
    Channel, Decision, InputSpec, Normalization, OutputSpec, Postprocessing,
)
from sct_lesion_classify.train import data as train_data
from sct_lesion_classify.train.augment import AugmentConfig
from sct_lesion_classify.train.export import with_cam, with_sigmoid
from sct_lesion_classify.train.input_cache import InputCache
from sct_lesion_classify.train.objectives import ClassifierObjective, SegmentationObjective

logger = logging.getLogger(__name__)

#: Name of the classifiers' class-activation-map output (``output.cam_tensor`` of their card).
CAM_OUTPUT = "cam"


@dataclass(frozen=True)
class Hyperparameters:
    """Training defaults of a family (each can be overridden on the command line)."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    lr: float
    patience: int  # early stopping: epochs without improvement of the monitored metric
    lr_patience: int  # ReduceLROnPlateau patience (epochs)
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    weight_decay: float = 0.0
    schedule: str = "plateau"  # or "cosine" (LoopConfig.schedule)
    warmup_epochs: int = 1


class Recipe(Protocol):
    """What the training command needs from a family (both recipe classes provide it)."""

    family: str
    name: str
    task: str  # the card's task
    description: str
    architecture: str
    architecture_details: Mapping[str, Any]
    defaults: Hyperparameters
    augment: AugmentConfig
    cpu_bf16: bool
    channels_last: bool
    intended_use: str
    #: The training objective, built as ``objective_class(model, recipe, train, val, batch_size=,
    #: steps_per_epoch=, workers=)`` (a :class:`~sct_lesion_classify.train.loop.TrainingObjective`).
    objective_class: ClassVar[type]
    #: ``model`` as exported: with its output activation (and the CAM output).
    export_network: ClassVar[Callable[[Any], Any]]
    #: Whether :meth:`load_sample` keeps its samples in the input cache (``--prepare-inputs``).
    caches_inputs: ClassVar[bool]

    @property
    def postprocessing(self) -> Postprocessing | None:
        """The card's ``postprocessing`` defaults (segmentation models)."""

    @property
    def decision(self) -> Decision | None:
        """The card's ``decision`` (classifiers)."""

    @property
    def example_hw(self) -> tuple[int, int]:
        """(H, W) of the example input that traces the ONNX export."""

    def input_spec(self) -> InputSpec:
        """The card's ``input`` section."""

    def output_spec(self) -> OutputSpec:
        """The card's ``output`` section."""

    def build_network(self) -> Any:
        """A freshly initialized PyTorch network (logits out)."""

    def usable(self, subject: Any) -> bool:
        """Whether a BIDS subject has what this family trains on (logs why not)."""

    def load_sample(self, subject: Any, input_spec: InputSpec, cache: Any = None) -> Any:
        """The training sample of a usable subject, prepared as inference prepares its input
        (from the :class:`~sct_lesion_classify.train.input_cache.InputCache` when given and used)."""

    def with_input_contract(self, name: str) -> "Recipe":
        """The recipe with the input contract ``name`` (``--input-contract``; classifiers only)."""

    def t1c_variant(self) -> "Recipe":
        """The variant whose first channel is the cT1w image (``--with-t1c``; classifiers only)."""

    def with_grid(self, spacing_mm: float | None = None, base_filters: int | None = None) -> "Recipe":
        """The recipe on another in-plane grid and network width (``--grid-mm``,
        ``--base-filters``; the lesion model only)."""

    def with_loss(self, name: str | None) -> "Recipe":
        """The recipe trained with another loss (``--loss``; the segmentation families only)."""

    def with_neighbour_slices(self, reach: int | None) -> "Recipe":
        """The recipe whose network also sees ``reach`` sagittal neighbours on each side
        (``--neighbour-slices``; the segmentation families only)."""

    def with_intensity_curve(self, prob: float | None) -> "Recipe":
        """The recipe whose training samples pass through a random intensity curve with
        probability ``prob`` (``--intensity-curve``; every family)."""

    def with_painted_lesions(self, prob: float | None) -> "Recipe":
        """The recipe whose training samples get synthetic lesions painted inside their cord
        label with probability ``prob`` (``--paint-lesions``; the cord localizer only)."""


def _with_intensity_curve(recipe: Any, prob: float | None) -> Any:
    """``recipe`` with :attr:`AugmentConfig.curve_prob` set to ``prob`` (None: keep), recorded in
    the card's ``architecture.details.intensity_curve_prob``.

    Raises
    ------
    InputError
        ``prob`` is outside [0, 1].
    """
    if prob is None or prob == recipe.augment.curve_prob:
        return recipe
    if not 0.0 <= prob <= 1.0:
        raise InputError(f"--intensity-curve must be a probability in [0, 1], got {prob}")
    return replace(recipe, augment=replace(recipe.augment, curve_prob=float(prob)),
                   architecture_details={**recipe.architecture_details,
                                         "intensity_curve_prob": float(prob)})


def _refuse_painted_lesions(prob: float | None, family: str) -> None:
    """Raise an InputError when ``--paint-lesions`` was given (``prob`` not None) to ``family``,
    which is not the cord localizer."""
    if prob is not None:
        raise InputError(f"--paint-lesions applies to the cord localizer, not to {family}")


def _has_files(recipe: Any, subject: Any, needed: Sequence[Any]) -> bool:
    if any(path is None for path in needed):
        logger.warning("%s: skipped for %s (missing image or label)", subject.participant_id,
                       recipe.name)
        return False
    return True


#: The segmentation losses (``--loss``) and how the card names them. ``dice_bce``: soft Dice over
#: the batch + binary cross-entropy (the families' default). ``bce``: binary cross-entropy alone,
#: whose optimum is the calibrated probability, so the 0.5 threshold is not pushed outwards:
#: a soft Dice term rewards marking a boundary voxel as target from a probability of about
#: Dice / 2 (Bertels et al., "Theoretical analysis and experimental validation of volume bias of
#: soft Dice optimized segmentation maps in the context of inherent uncertainty", Medical Image
#: Analysis 67, 2021), which widens a thin structure by its uncertain rim.
SEGMENTATION_LOSSES = {"dice_bce": "Dice + BCE", "bce": "BCE"}


def same_extent_on_grid(size_px: Sequence[int], from_mm: Sequence[float], to_mm: Sequence[float],
                        multiple: int) -> tuple[int, ...]:
    """Pixels, per axis, of the extent ``size_px`` x ``from_mm`` on a grid of ``to_mm``, rounded to a
    multiple of ``multiple`` (at least one multiple)."""
    return tuple(max(multiple, multiple * round(size * old / new / multiple))
                 for size, old, new in zip(size_px, from_mm, to_mm))


@dataclass(frozen=True)
class SegmentationRecipe:
    """A 2D segmentation network on sagittal slices (cord localizer or lesion model).

    Attributes
    ----------
    family, name
        Command-line family and model package name.
    task
        Card task (``cord_localization`` or ``lesion_segmentation``).
    target
        The label of a :class:`~sct_lesion_classify.train.data.LoadedSubject` (its cord or
        lesion mask); ``needs_lesion_mask`` says whether the lesion mask must be loaded.
    crop_margins_mm
        Crop around the cord mask before slicing, (R-L, A-P, S-I) mm; None: the whole image.
    spacing_mm
        In-plane (A-P, S-I) spacing of the model grid.
    patch_size
        (H, W) of the training patches, divisible by ``size_divisible_by``.
    network_factory
        ``f(in_channels=...)`` -> a freshly initialized network (:meth:`build_network`).
    scalable_network
        ``f(base_filters, in_channels=...)`` -> network, for a family whose grid and width can be
        chosen (:meth:`with_grid`); None: the network is fixed.
    neighbour_slices
        Sagittal neighbours on each side given to the network as further input channels (2.5D;
        :meth:`with_neighbour_slices`): 0 for a 2D network that sees one slice.
    empty_fraction
        Fraction of each batch drawn from slices without target (the rest contains target).
    loss
        Training loss, a key of :data:`SEGMENTATION_LOSSES`.
    """

    family: str
    name: str
    task: str
    description: str
    architecture: str
    architecture_details: Mapping[str, Any]
    network_factory: Callable[..., Any]
    target: Callable[[Any], Any]
    needs_lesion_mask: bool
    crop_margins_mm: tuple[float, float, float] | None
    spacing_mm: tuple[float, float]
    size_divisible_by: int
    patch_size: tuple[int, int]
    empty_fraction: float
    postprocessing: Postprocessing
    defaults: Hyperparameters
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cpu_bf16: bool = False
    channels_last: bool = False
    intended_use: str = ""
    scalable_network: Callable[..., Any] | None = None
    loss: str = "dice_bce"
    neighbour_slices: int = 0
    objective_class: ClassVar[type] = SegmentationObjective
    export_network: ClassVar[Callable[[Any], Any]] = staticmethod(with_sigmoid)  # sigmoid output
    caches_inputs: ClassVar[bool] = False  # random patches are cut from the volume every step

    @property
    def decision(self) -> None:
        """Segmentation models make no decision (the card's ``decision`` is null)."""
        return None

    @property
    def example_hw(self) -> tuple[int, int]:
        """A training patch (the exported network takes any size divisible by the card's)."""
        return tuple(self.patch_size)

    def build_network(self) -> Any:
        """A freshly initialized network taking the card's input channels (logits out)."""
        return self.network_factory(in_channels=self.input_spec().n_channels)

    def input_spec(self) -> InputSpec:
        """The card's ``input`` section: the z-scored T2w slice on the model grid, and its
        sagittal neighbours as further channels for a 2.5D recipe (``runtime.sagittal.slice_offsets``)."""
        from sct_lesion_classify.runtime.sagittal import neighbour_channel_name

        scope = "cropped volume" if self.crop_margins_mm is not None else "whole volume"
        described = (f"sagittal T2w slice, z-scored over the {scope}; padding takes the normalized "
                     "minimum")
        reach = self.neighbour_slices
        channels = tuple(
            Channel(neighbour_channel_name(offset),
                    described if offset == 0 else
                    f"the sagittal T2w slice {abs(offset)} slice(s) {'before' if offset < 0 else 'after'} "
                    "it along the canonical right-left axis, prepared alike; beyond the image, the "
                    "smallest value of the prepared slices")
            for offset in range(-reach, reach + 1))
        return InputSpec(
            tensor="input",
            layout="NCHW",
            channels=channels,
            slicing="sagittal",
            spatial_size=None,
            size_divisible_by=self.size_divisible_by,
            spacing_mm=tuple(self.spacing_mm),
            normalization=Normalization(method="zscore", clip=None, rescale=None),
            crop_margins_mm=None if self.crop_margins_mm is None else tuple(self.crop_margins_mm),
            min_lesion_area_mm2=None,
        )

    def output_spec(self) -> OutputSpec:
        """The card's ``output`` section: the sigmoid probability of the family's target."""
        return OutputSpec(tensor="output", activation="sigmoid", classes=("background", self.family),
                          positive_class=self.family)

    def usable(self, subject: Any) -> bool:
        """A T2w image, the cord mask, and the lesion mask when the target is the lesion."""
        needed = [subject.t2w, subject.cord_mask]
        if self.needs_lesion_mask:
            needed.append(subject.lesion_mask)
        return _has_files(self, subject, needed)

    def load_sample(self, subject: Any, input_spec: InputSpec, cache: InputCache | None = None) -> Any:
        """The subject's slices on the model grid (:func:`~.data.segmentation_volume`); not
        cached (``cache`` is ignored: random patches are cut from the volume every step)."""
        loaded = train_data.load_subject(subject, cord=True, lesion=self.needs_lesion_mask)
        return train_data.segmentation_volume(loaded, self, input_spec)


    def with_input_contract(self, name: str) -> "SegmentationRecipe":
        """Segmentation families have no input contract to choose (their grid is the recipe's).

        Raises
        ------
        InputError
            Always (``--input-contract`` applies to the classifiers).
        """
        raise InputError(f"--input-contract applies to the classifiers, not to {self.family}")

    def t1c_variant(self) -> "SegmentationRecipe":
        """Segmentation families have no cT1w variant.

        Raises
        ------
        InputError
            Always (``--with-t1c`` applies to the classifiers).
        """
        raise InputError(f"--with-t1c applies to the classifiers, not to {self.family}")

    def with_grid(self, spacing_mm: float | None = None, base_filters: int | None = None
                  ) -> "SegmentationRecipe":
        """The recipe on an isotropic in-plane grid of ``spacing_mm`` with a network of
        ``base_filters`` (None: keep). The training patches keep their extent in mm.

        Raises
        ------
        InputError
            The family's network is fixed (:attr:`scalable_network` is None), or a value is not
            positive.
        """
        if spacing_mm is None and base_filters is None:
            return self
        if self.scalable_network is None:
            raise InputError(f"--grid-mm and --base-filters apply to the lesion model, not to {self.family}")
        spacing = tuple(self.spacing_mm) if spacing_mm is None else (float(spacing_mm),) * 2
        width = self.architecture_details.get("base_filters") if base_filters is None else int(base_filters)
        if min(spacing) <= 0 or not width or width <= 0:
            raise InputError(f"{self.family}: the grid and the width must be positive, got "
                             f"{spacing_mm} mm and {base_filters} filters")
        patch = same_extent_on_grid(self.patch_size, self.spacing_mm, spacing, self.size_divisible_by)
        return replace(self, spacing_mm=spacing, patch_size=patch,
                       network_factory=partial(self.scalable_network, width),
                       architecture_details={**self.architecture_details, "base_filters": width})

    def with_neighbour_slices(self, reach: int | None) -> "SegmentationRecipe":
        """The recipe whose network also sees ``reach`` sagittal neighbours on each side of the
        slice as input channels (``--neighbour-slices``, 2.5D; None: keep).

        A 2D network cannot tell a lateral slice that cuts the edge of the cord (partial volume)
        from the cord's middle; its neighbours can. The card lists the channels, and inference
        gathers them as training does (``runtime.sagittal.SliceStack``).

        Raises
        ------
        InputError
            ``reach`` is negative.
        """
        if reach is None or reach == self.neighbour_slices:
            return self
        if reach < 0:
            raise InputError(f"--neighbour-slices must be >= 0, got {reach}")
        return replace(self, neighbour_slices=int(reach),
                       architecture_details={**self.architecture_details,
                                             "in_channels": 2 * int(reach) + 1,
                                             "neighbour_slices": int(reach)})

    def with_intensity_curve(self, prob: float | None) -> "SegmentationRecipe":
        """See :meth:`Recipe.with_intensity_curve`."""
        return _with_intensity_curve(self, prob)

    def with_painted_lesions(self, prob: float | None) -> "SegmentationRecipe":
        """The cord localizer with :attr:`AugmentConfig.paint_prob` set to ``prob`` (None: keep),
        recorded in the card's ``architecture.details.painted_lesion_prob``.

        Raises
        ------
        InputError
            ``prob`` outside [0, 1], or a family whose target is not the cord (the lesion model's
            label is the lesion: a blob painted in its cord would be an unlabelled lesion).
        """
        if self.task != "cord_localization":
            _refuse_painted_lesions(prob, self.family)
        if prob is None or prob == self.augment.paint_prob:
            return self
        if not 0.0 <= prob <= 1.0:
            raise InputError(f"--paint-lesions must be a probability in [0, 1], got {prob}")
        return replace(self, augment=replace(self.augment, paint_prob=float(prob)),
                       architecture_details={**self.architecture_details, "painted_lesion_prob": float(prob)})

    def with_loss(self, name: str | None) -> "SegmentationRecipe":
        """The recipe trained with the loss ``name`` (``--loss``; None: keep).

        Raises
        ------
        InputError
            ``name`` is not a key of :data:`SEGMENTATION_LOSSES`.
        """
        if name is None or name == self.loss:
            return self
        if name not in SEGMENTATION_LOSSES:
            raise InputError(f"unknown loss {name!r}; choose one of {sorted(SEGMENTATION_LOSSES)}")
        return replace(self, loss=name,
                       architecture_details={**self.architecture_details,
                                             "loss": SEGMENTATION_LOSSES[name]})


@dataclass(frozen=True)
class InputContract:
    """What a classifier sees of a subject (the card's ``input`` grid; :mod:`~sct_lesion_classify.classify.inputs`).

    Attributes
    ----------
    name
        ``lesion_roi`` or ``whole_slice`` (``train --input-contract``; the card's
        ``architecture.details.input_contract``).
    spatial_size, spacing_mm, centred_on
        The card's ``input`` fields of that name.
    flip_prob
        Probability of the training flips (A-P and S-I): 0 for the lesion ROI, whose fixed
        orientation (head up, anterior first) carries the level and the anatomy around the lesion.
    """

    name: str
    spatial_size: tuple[int, int]
    spacing_mm: tuple[float, float] | None
    centred_on: str | None
    flip_prob: float
    description: str


#: The classifiers' input contracts, by name. Network cost grows with the pixels: on the bench's
#: 512 x 512 x 15 subject the three classifiers cost 178 GFLOP with ``whole_slice`` and about a
#: quarter of that with ``lesion_roi`` (bench/README.md); training steps are as much cheaper.
INPUT_CONTRACTS: dict[str, InputContract] = {contract.name: contract for contract in (
    # 64 x 192 pixels of 1.25 mm: 80 mm A-P (cord, canal, vertebral bodies and posterior elements)
    # by 240 mm S-I (most of a clinical sagittal field of view, so the level and the lesion's
    # extent stay visible), a quarter of the pixels of 256 x 256 at about the paper's scale
    # (a 240-320 mm field of view on 256 pixels: 0.9-1.25 mm).
    InputContract("lesion_roi", (64, 192), (1.25, 1.25), "lesion", 0.0,
                  "a 80 x 240 mm (A-P x S-I) region at 1.25 mm centred on the lesion's bounding box"),
    # Zhuo et al. 2022: the whole slice padded to a square and resized to 256 x 256.
    InputContract("whole_slice", (256, 256), None, None, 0.5,
                  "the whole slice padded to a square and resized to 256 x 256 (Zhuo et al. 2022)"),
)}
DEFAULT_INPUT_CONTRACT = "lesion_roi"


#: The card's ``architecture.details`` of the classifiers.
DENSENET_DETAILS: Mapping[str, Any] = {
    "implementation": "monai.networks.nets.DenseNet121", "spatial_dims": 2, "in_channels": 3,
    "out_channels": 1, "output": "sigmoid probability", "loss": "BCE",
    "sampling": "equal halves per class, patient then slice"}


@dataclass(frozen=True)
class ClassifierRecipe:
    """A binary DenseNet121 classifier on the sagittal slices that contain lesion (the paper's
    per-slice rule), each seen as its input contract says (:data:`INPUT_CONTRACTS`).

    Attributes
    ----------
    input_contract, spatial_size, spacing_mm, centred_on
        The contract's name and its grid (set together by :meth:`with_input_contract`; the field
        defaults are the paper's whole slice, the recipes of :data:`RECIPES` use
        :data:`DEFAULT_INPUT_CONTRACT`).
    selection
        The validation metric that selects the epoch and stops early
        (``train.objectives.CLASSIFIER_MONITORS``).
    classes
        The two classes, in the order of :data:`sct_lesion_classify.classify.diagnosis.ROLE_CLASSES`.
    positive_class
        The class whose probability the network outputs.
    class_of
        Diagnosis -> class for the subjects this model sees; other diagnoses are left out.
    with_t1c
        Whether the first channel is the cT1w image (else zeros).
    """

    family: str
    name: str
    description: str
    classes: tuple[str, str]
    positive_class: str
    class_of: Mapping[str, str]
    defaults: Hyperparameters
    with_t1c: bool = False
    input_contract: str = "whole_slice"
    spatial_size: tuple[int, int] = (256, 256)
    spacing_mm: tuple[float, float] | None = None
    centred_on: str | None = None
    min_lesion_area_mm2: float = 5.0
    low_confidence_band: float = 0.1
    #: Model selection and early stopping (``train.objectives.CLASSIFIER_MONITORS``).
    selection: str = "auc_then_loss"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cpu_bf16: bool = True
    channels_last: bool = True
    task: str = "classification"
    architecture: str = "DenseNet121"
    architecture_details: Mapping[str, Any] = field(default_factory=lambda: dict(DENSENET_DETAILS))
    intended_use: str = ("Differential-diagnosis suggestion for intramedullary spinal cord lesions "
                         "on sagittal MRI, for researchers; the lesion mask should be reviewed "
                         "first. Research use only; not a medical device.")
    objective_class: ClassVar[type] = ClassifierObjective
    export_network: ClassVar[Callable[[Any], Any]] = staticmethod(with_cam)  # probability, CAM
    caches_inputs: ClassVar[bool] = True

    def with_grid(self, spacing_mm: float | None = None, base_filters: int | None = None
                  ) -> "ClassifierRecipe":
        """Classifiers choose their grid with the input contract.

        Raises
        ------
        InputError
            When a grid or a width is given (``--input-contract`` chooses the classifiers' grid).
        """
        if spacing_mm is None and base_filters is None:
            return self
        raise InputError(f"--grid-mm and --base-filters apply to the lesion model, not to {self.family}")

    def with_neighbour_slices(self, reach: int | None) -> "ClassifierRecipe":
        """Classifiers see the lesion's slices through their input contract.

        Raises
        ------
        InputError
            When ``reach`` is given (``--neighbour-slices`` applies to the segmentation families).
        """
        if reach is None:
            return self
        raise InputError(f"--neighbour-slices applies to the cord localizer and the lesion model, not to "
                         f"{self.family}")

    def with_intensity_curve(self, prob: float | None) -> "ClassifierRecipe":
        """See :meth:`Recipe.with_intensity_curve`."""
        return _with_intensity_curve(self, prob)

    def with_painted_lesions(self, prob: float | None) -> "ClassifierRecipe":
        """Classifiers learn lesions; nothing is painted into their inputs.

        Raises
        ------
        InputError
            When ``prob`` is given (``--paint-lesions`` applies to the cord localizer).
        """
        _refuse_painted_lesions(prob, self.family)
        return self

    def with_loss(self, name: str | None) -> "ClassifierRecipe":
        """Classifiers train with BCE only.

        Raises
        ------
        InputError
            When a loss is given (``--loss`` applies to the segmentation families).
        """
        if name is None:
            return self
        raise InputError(f"--loss applies to the segmentation families (cord, lesion), not to {self.family}")

    def t1c_variant(self) -> "ClassifierRecipe":
        """The same classifier with the cT1w channel (package ``<name>_t1c``)."""
        if self.with_t1c:
            return self
        return replace(self, name=f"{self.name}_t1c", with_t1c=True,
                       description=self.description + " This variant uses the contrast-enhanced "
                       "T1w image as its first channel.")

    def with_input_contract(self, name: str) -> "ClassifierRecipe":
        """The same classifier with the input contract ``name`` (:data:`INPUT_CONTRACTS`).

        Raises
        ------
        InputError
            An unknown contract name.
        """
        if name not in INPUT_CONTRACTS:
            raise InputError(f"unknown input contract {name!r}; choose one of {sorted(INPUT_CONTRACTS)}")
        contract = INPUT_CONTRACTS[name]
        details = dict(self.architecture_details, input_contract=contract.name)
        return replace(self, input_contract=contract.name, spatial_size=contract.spatial_size,
                       spacing_mm=contract.spacing_mm, centred_on=contract.centred_on,
                       augment=replace(self.augment, flip_prob=contract.flip_prob),
                       architecture_details=details)

    def label_of(self, diagnosis: str | None) -> int | None:
        """1 for the positive class, 0 for the other, None when the model does not see it."""
        if diagnosis not in self.class_of:
            return None
        return int(self.class_of[diagnosis] == self.positive_class)

    def build_network(self) -> Any:
        """DenseNet121, 3 input channels, one logit."""
        from sct_lesion_classify.train.networks.densenet import densenet121

        return densenet121(in_channels=3, out_channels=1)

    @property
    def postprocessing(self) -> None:
        """Classifiers have no mask to postprocess (the card's ``postprocessing`` is null)."""
        return None

    @property
    def decision(self) -> Decision:
        """Patient probability = mean of the slice probabilities; the low-confidence band."""
        return Decision(aggregation="mean", low_confidence_band=self.low_confidence_band)

    @property
    def example_hw(self) -> tuple[int, int]:
        """The fixed input size."""
        return tuple(self.spatial_size)

    def input_spec(self) -> InputSpec:
        """The card's ``input`` section (the contract of ``classify.inputs``)."""
        names = CHANNEL_NAMES if self.with_t1c else T2W_ONLY_CHANNEL_NAMES
        descriptions = (("contrast-enhanced T1w in the T2w space, normalized like T2w "
                         "(zeros when a subject has none)") if self.with_t1c else
                        "the paper's cT1w channel, all zeros for this T2w-only model",
                        "T2w", "lesion mask, 0/1")
        return InputSpec(
            tensor="input",
            layout="NCHW",
            channels=tuple(Channel(n, d) for n, d in zip(names, descriptions)),
            slicing="sagittal",
            spatial_size=tuple(self.spatial_size),
            size_divisible_by=1,
            spacing_mm=None if self.spacing_mm is None else tuple(self.spacing_mm),
            normalization=Normalization(method="zscore", clip=(-5.0, 5.0), rescale=(0.0, 1.0)),
            crop_margins_mm=None,
            min_lesion_area_mm2=self.min_lesion_area_mm2,
            centred_on=self.centred_on,
        )

    def output_spec(self) -> OutputSpec:
        """The card's ``output`` section: P(positive class), and the CAM output."""
        return OutputSpec(tensor="output", activation="sigmoid", classes=tuple(self.classes),
                          positive_class=self.positive_class, cam_tensor=CAM_OUTPUT)

    def usable(self, subject: Any) -> bool:
        """A diagnosis this model sees (others are left out silently), T2w and the lesion mask."""
        if self.label_of(subject.diagnosis) is None:
            return False
        return _has_files(self, subject, [subject.t2w, subject.lesion_mask])

    def load_sample(self, subject: Any, input_spec: InputSpec, cache: InputCache | None = None) -> Any:
        """The subject's classifier slices (:func:`~.data.classifier_subject`), from ``cache``
        when it holds them (the same for every classifier of this input contract)."""
        label = self.label_of(subject.diagnosis)
        key = None
        if cache is not None:
            sources = [subject.t2w, subject.lesion_mask, subject.t1c if self.with_t1c else None]
            key = cache.key(input_spec.to_json(), sources, extra=f"t1c={self.with_t1c}")
            stored = cache.load(key)
            if stored is not None:
                return train_data.ClassifierSubject(
                    subject.participant_id, int(label), stored["slices"],
                    tuple(int(i) for i in stored["slice_indices"]), bool(stored["has_t1c"]))
        loaded = train_data.load_subject(subject, lesion=True, t1c=self.with_t1c)
        sample = train_data.classifier_subject(loaded, label, input_spec)
        if cache is not None:
            cache.store(key, {"slices": sample.slices, "slice_indices": np.array(sample.slice_indices, int),
                              "has_t1c": np.array(sample.has_t1c)})
        return sample



def _multiresunet(base_filters: int, in_channels: int = 1) -> Any:
    from sct_lesion_classify.train.networks.multiresunet import MultiResUNet

    return MultiResUNet(in_channels=in_channels, out_channels=1, base_filters=base_filters, alpha=1.67)


def _cord_unet(in_channels: int = 1) -> Any:
    from sct_lesion_classify.train.networks.unet import cord_unet

    return cord_unet(in_channels=in_channels, out_channels=1)


def _cord_mask(loaded: Any) -> Any:
    return loaded.cord_mask


def _lesion_mask(loaded: Any) -> Any:
    return loaded.lesion_mask


CORD = SegmentationRecipe(
    family="cord",
    name="cord_localizer",
    task="cord_localization",
    description="Spinal cord localizer: a small 2D U-Net on sagittal T2w slices at 1 mm in-plane. "
                "2D rather than 3D because clinical sagittal T2w has 3-4 mm thick slices (often "
                "12-20 of them): a 3D network would see a few voxels across the cord and cost far "
                "more, while the crop only needs a coarse cord mask (margins are added).",
    architecture="UNet2D",
    architecture_details={"implementation": "monai.networks.nets.UNet", "spatial_dims": 2,
                          "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                          "num_res_units": 1, "norm": "batch", "loss": "Dice + BCE",
                          "output": "sigmoid probability"},
    network_factory=_cord_unet,
    target=_cord_mask,
    needs_lesion_mask=False,
    crop_margins_mm=None,
    spacing_mm=(1.0, 1.0),
    size_divisible_by=16,
    patch_size=(128, 128),
    empty_fraction=0.25,
    postprocessing=Postprocessing(threshold=0.5, fill_holes=True, largest=True, remove_small=()),
    defaults=Hyperparameters(epochs=100, steps_per_epoch=100, batch_size=16, lr=1e-3,
                             patience=15, lr_patience=5),
    intended_use="Coarse spinal cord localization on sagittal T2w MRI, to place the crop box of "
                 "the lesion model. Research use only; not a medical device.",
)

LESION = SegmentationRecipe(
    family="lesion",
    name="lesion_multiresunet",
    task="lesion_segmentation",
    description="Intramedullary lesion segmentation (tumour or demyelinating lesion): 2D "
                "MultiResUNet (Ibtehaz & Rahman 2020) on sagittal T2w slices of the crop around "
                "the cord, resampled in-plane to the grid of input.spacing_mm (Zhuo et al. 2022 "
                "used 0.5 mm and 32 base filters; the width is architecture.details.base_filters).",
    architecture="MultiResUNet",
    architecture_details={"reference": "Ibtehaz & Rahman, Neural Networks 2020;121:74-87",
                          "base_filters": 16, "alpha": 1.67, "levels": 5,
                          "res_path_lengths": [4, 3, 2, 1], "loss": "Dice + BCE",
                          "output": "sigmoid probability"},
    # 16 base filters at 0.5 mm (the paper: 32): 93 GFLOP on the bench's 512x512x15 subject instead
    # of 380, chosen against 24 filters at 0.75 mm by validation Dice (models/README.md)
    network_factory=partial(_multiresunet, 16),
    scalable_network=_multiresunet,
    target=_lesion_mask,
    needs_lesion_mask=True,
    crop_margins_mm=(5.0, 15.0, 20.0),
    spacing_mm=(0.5, 0.5),
    size_divisible_by=16,
    patch_size=(96, 192),
    empty_fraction=0.25,
    # cord_margin_mm: the output is zero beyond 2 mm of the cord (measured on held-out phantoms,
    # models/README.md "Transfer": 0.4% of true lesion voxels lie beyond it, Dice 0.712 -> 0.767)
    postprocessing=Postprocessing(threshold=0.5, fill_holes=True, largest=False,
                                  remove_small=("20mm3",), cord_margin_mm=2.0),
    # warm-up then cosine decay over the planned epochs: a short CPU run ends at a small learning
    # rate (a plateau schedule never stepped down in the 8 epochs of the 1.0.0 run)
    defaults=Hyperparameters(epochs=200, steps_per_epoch=100, batch_size=8, lr=1e-3,
                             patience=20, lr_patience=7, schedule="cosine", warmup_epochs=1),
    cpu_bf16=True,  # where the CPU runs bf16 natively: 0.72 s instead of 1.20 s per step of 8 x 96 x 192
    intended_use="Intramedullary spinal cord lesion segmentation on sagittal T2w MRI, for "
                 "review and correction by an expert. Research use only; not a medical device.",
)

# Warm-up then cosine decay: the decay follows the planned number of epochs, so a run of
# --epochs N ends at a small learning rate (a plateau schedule on a noisy validation AUC of a few
# dozen patients stepped down too early or never).
_CLASSIFIER_DEFAULTS = Hyperparameters(epochs=100, steps_per_epoch=50, batch_size=16, lr=3e-4,
                                       patience=15, lr_patience=5, min_lr=1e-6,
                                       weight_decay=1e-4, schedule="cosine", warmup_epochs=1)

TUMOR_VS_DEMYELINATING = ClassifierRecipe(
    family="tumor_vs_demyelinating",
    name="tumor_vs_demyelinating",
    description="Model 1 of Zhuo et al. 2022: intramedullary tumour (astrocytoma or ependymoma) "
                "vs demyelinating lesion (MS or NMOSD), from the sagittal slices that contain "
                "lesion; the patient probability is the mean of the slice probabilities.",
    classes=("tumor", "demyelinating"),
    positive_class="tumor",
    class_of={"astrocytoma": "tumor", "ependymoma": "tumor", "MS": "demyelinating",
              "NMOSD": "demyelinating"},
    defaults=_CLASSIFIER_DEFAULTS,
).with_input_contract(DEFAULT_INPUT_CONTRACT)

ASTROCYTOMA_VS_EPENDYMOMA = ClassifierRecipe(
    family="astrocytoma_vs_ependymoma",
    name="astrocytoma_vs_ependymoma",
    description="Model 2 of Zhuo et al. 2022: astrocytoma vs ependymoma, among tumours.",
    classes=("astrocytoma", "ependymoma"),
    positive_class="ependymoma",
    class_of={"astrocytoma": "astrocytoma", "ependymoma": "ependymoma"},
    defaults=_CLASSIFIER_DEFAULTS,
).with_input_contract(DEFAULT_INPUT_CONTRACT)

MS_VS_NMOSD = ClassifierRecipe(
    family="ms_vs_nmosd",
    name="ms_vs_nmosd",
    description="Model 3 of Zhuo et al. 2022: MS vs NMOSD, among demyelinating lesions.",
    classes=("MS", "NMOSD"),
    positive_class="NMOSD",
    class_of={"MS": "MS", "NMOSD": "NMOSD"},
    defaults=_CLASSIFIER_DEFAULTS,
).with_input_contract(DEFAULT_INPUT_CONTRACT)

#: Every family the pipeline runs, by command-line name.
RECIPES: dict[str, Recipe] = {
    recipe.family: recipe
    for recipe in (CORD, LESION, TUMOR_VS_DEMYELINATING, ASTROCYTOMA_VS_EPENDYMOMA, MS_VS_NMOSD)
}
