"""Which model package each step of the pipeline uses.

Each step has a default package name in the registry; ``-custom-model FOLDER`` replaces the
package of the step its card declares (the card's ``task``, and for a classifier the pair of
classes it separates). No lookup by class name: the card says what a package is for.

:func:`select_models` is the one place that picks the packages of a run (commands, cohort runner,
evaluation); its :class:`ModelSelection` says which of them an image uses (:func:`choose_classifiers`:
the cT1w-aware variant of a classifier when the image has a cT1w), as packages or as the
fingerprints the diagnosis JSON records.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, TypeVar

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.classify.inputs import takes_t1c
from sct_lesion_classify.errors import InputError, ModelError
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.registry import locate, resolve

CORD_STEP = "cord_localization"
LESION_STEP = "lesion_segmentation"

#: Registry name of the package each step uses by default.
DEFAULT_PACKAGES: dict[str, str] = {
    CORD_STEP: "cord_localizer",
    LESION_STEP: "lesion_multiresunet",
    **{role: role for role in ROLE_CLASSES},
}
#: Registry name of the cT1w-aware variant of each classifier.
T1C_PACKAGES: dict[str, str] = {role: f"{role}_t1c" for role in ROLE_CLASSES}
#: Registry name of the package of every step (the cT1w variants are steps of their own).
PACKAGE_NAMES: dict[str, str] = {**DEFAULT_PACKAGES, **{name: name for name in T1C_PACKAGES.values()}}


def step_of(card: ModelCard) -> str:
    """The pipeline step a package serves, read from its card."""
    if card.task != "classification":
        return card.task
    classes = set(card.output.classes)
    for role, pair in ROLE_CLASSES.items():
        if classes == set(pair):
            return T1C_PACKAGES[role] if takes_t1c(card.input) else role
    raise InputError(f"model {card.name}: a classifier of classes {sorted(classes)} serves no step of "
                     f"the pipeline (expected one of {[list(p) for p in ROLE_CLASSES.values()]})")


def load_custom_packages(folders: Iterable[str | Path]) -> dict[str, ModelPackage]:
    """Load ``-custom-model`` folders (verified) and key them by the step they serve.

    Raises
    ------
    InputError
        A folder that is missing, or two folders for the same step.
    """
    packages: dict[str, ModelPackage] = {}
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise InputError(f"{path}: model folder not found (-custom-model)")
        package = ModelPackage.load(path)
        step = step_of(package.card)
        if step in packages:
            raise InputError(f"{path}: a second -custom-model for {step} "
                             f"(already {packages[step].folder})")
        packages[step] = package
    return packages


def package_for(step: str, custom: dict[str, ModelPackage]) -> ModelPackage:
    """The package of ``step``: the user's custom one, else the registry's default (verified)."""
    if step in custom:
        return custom[step]
    return resolve(PACKAGE_NAMES[step])


def optional_package_for(step: str, custom: dict[str, ModelPackage]) -> ModelPackage | None:
    """Like :func:`package_for`, but None when no such package is installed (cT1w variants).

    A package that exists but fails verification is still an error.
    """
    if step in custom:
        return custom[step]
    name = PACKAGE_NAMES[step]
    try:
        locate(name)
    except ModelError:
        return None
    return resolve(name)


@dataclass(frozen=True)
class ModelFingerprint:
    """A model package as the diagnosis JSON records it."""

    name: str
    version: str
    sha256: str

    @classmethod
    def of(cls, package: ModelPackage) -> "ModelFingerprint":
        """The fingerprint of ``package``."""
        return cls(name=package.name, version=package.version, sha256=package.sha256)

    @property
    def label(self) -> str:
        """``name version``, as in the cohort CSV's models column."""
        return f"{self.name} {self.version}"


Model = TypeVar("Model")


def choose_classifiers(classifiers: Mapping[str, Model], t1c_classifiers: Mapping[str, Model],
                       with_t1c: bool) -> tuple[dict[str, Model], tuple[str, ...]]:
    """The classifier of each role for one image, and the warnings of that choice.

    With a cT1w image (``with_t1c``), a role's cT1w-aware variant is used where one is installed,
    else its T2w-only classifier (with a warning naming the roles). Serves packages and loaded
    classifiers alike, so what runs is what the provenance lists.
    """
    if not with_t1c:
        return dict(classifiers), ()
    used = {role: t1c_classifiers.get(role, model) for role, model in classifiers.items()}
    missing = [role for role in ROLE_CLASSES if role not in t1c_classifiers]
    if not missing:
        return used, ()
    return used, (f"-i-t1c given but no cT1w-aware model is installed for {', '.join(missing)}: "
                  "the cT1w image is ignored there (T2w-only models used)",)


@dataclass(frozen=True)
class ModelSelection:
    """The verified packages of a run, per step, before any session is built.

    Attributes
    ----------
    lesion
        The lesion segmentation package; None when the run does not segment (masks given).
    cord
        The bundled cord localizer; None when it does not run.
    classifiers
        Role -> classifier package (empty for a segmentation-only run).
    t1c_classifiers
        Role -> cT1w-aware variant, for the roles that have one installed (when asked for).
    """

    lesion: ModelPackage | None = None
    cord: ModelPackage | None = None
    classifiers: Mapping[str, ModelPackage] = field(default_factory=dict)
    t1c_classifiers: Mapping[str, ModelPackage] = field(default_factory=dict)

    @property
    def segmentation(self) -> tuple[ModelPackage, ...]:
        """The segmentation packages, in pipeline order (cord localizer, lesion)."""
        return tuple(p for p in (self.cord, self.lesion) if p is not None)

    def packages(self, *, with_t1c: bool, segmented: bool = True) -> tuple[ModelPackage, ...]:
        """The packages an image's diagnosis uses, in the diagnosis JSON's order.

        ``with_t1c``: the image has a cT1w; ``segmented``: its lesion mask was segmented (a given
        mask lists no segmentation package).
        """
        classifiers, _ = choose_classifiers(self.classifiers, self.t1c_classifiers, with_t1c)
        return (self.segmentation if segmented else ()) + tuple(classifiers.values())

    def fingerprints(self, *, with_t1c: bool, segmented: bool = True) -> tuple[ModelFingerprint, ...]:
        """:meth:`packages` as the diagnosis JSON records them."""
        return tuple(ModelFingerprint.of(p) for p in self.packages(with_t1c=with_t1c, segmented=segmented))


def select_models(custom_folders: Iterable[str | Path] = (), *, segment: bool, cord_localizer: bool,
                  classify: bool = True, t1c: bool = False) -> ModelSelection:
    """Resolve and verify the packages of a run: ``-custom-model`` folders, else the registry's.

    Parameters
    ----------
    custom_folders
        ``-custom-model`` folders (:func:`load_custom_packages`).
    segment
        The run segments lesions (the lesion package).
    cord_localizer
        The bundled cord localizer runs (with ``segment``).
    classify
        The run classifies (the three classifiers).
    t1c
        Images may come with a cT1w: the installed cT1w-aware variants are selected too.

    Raises
    ------
    InputError, ModelError
        An invalid ``-custom-model`` folder, or a package that is missing or fails verification.
    """
    from sct_lesion_classify.runtime.session import build_concurrently

    custom = load_custom_packages(custom_folders)
    steps = ([CORD_STEP] if segment and cord_localizer else []) + ([LESION_STEP] if segment else []) \
        + (list(ROLE_CLASSES) if classify else [])
    builders = {step: functools.partial(package_for, step, custom) for step in steps}
    if classify and t1c:
        builders.update({T1C_PACKAGES[role]: functools.partial(optional_package_for, T1C_PACKAGES[role], custom)
                         for role in ROLE_CLASSES})
    packages = build_concurrently(builders)  # each package's sha256 checked side by side
    t1c_classifiers = {role: packages[T1C_PACKAGES[role]] for role in ROLE_CLASSES
                       if packages.get(T1C_PACKAGES[role]) is not None}
    return ModelSelection(lesion=packages.get(LESION_STEP), cord=packages.get(CORD_STEP),
                          classifiers={role: packages[role] for role in ROLE_CLASSES if role in packages},
                          t1c_classifiers=t1c_classifiers)
