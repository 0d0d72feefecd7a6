"""Which model package each step of the pipeline uses.

Each step has a default package name in the registry; ``-custom-model FOLDER`` replaces the
package of the step its card declares (the card's ``task``, and for a classifier the pair of
classes it separates). No lookup by class name: the card says what a package is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.classify.inputs import T1C_CHANNEL
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
            return T1C_PACKAGES[role] if card.input.channels[0].name == T1C_CHANNEL else role
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
