"""Shared fixtures of the reliability tests (issue 8): a small synthetic subject and tiny packages.

Not a test module (no ``test_`` prefix): ``test_bad_inputs``, ``test_fuzz_nifti``,
``test_atomic_outputs`` and ``test_determinism`` import it (pytest puts ``tests/`` on
``sys.path``). Everything here is small so that a full run of either command takes well under a
second on two cores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np

from sct_lesion_classify.classify.diagnosis import ROLE_CLASSES
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package

SHAPE = (7, 40, 56)
ZOOMS = (3.0, 0.8, 0.8)


def synthetic_subject(seed: int = 0):
    """Canonical arrays: dark background, a cord along S-I, a bright lesion inside the cord."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    cord = (((x - 3) * ZOOMS[0]) ** 2 + ((y - 20) * ZOOMS[1]) ** 2) < 5.0 ** 2
    lesion = cord & (np.abs(z - 28) < 8) & (np.abs(x - 3) <= 1) & (np.abs(y - 20) < 4)
    data = rng.normal(100, 5, SHAPE)
    data[cord] = 300
    data[lesion] = 1500
    affine = np.diag([*ZOOMS, 1.0])
    affine[:3, 3] = (-9.0, -16.0, -22.0)
    return data.astype(np.float32), cord, lesion, affine


def save(path: Path, array: np.ndarray, affine: np.ndarray, dtype=np.float32) -> Path:
    """Write ``array`` as NIfTI-1 with qform and sform code 1."""
    img = nib.Nifti1Image(np.asarray(array).astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def write_subject(folder: Path, seed: int = 0) -> dict[str, Path]:
    """``sub-01_T2w``, ``sub-01_cord`` and ``sub-01_lesion`` (.nii.gz) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data, cord, lesion, affine = synthetic_subject(seed)
    return {
        "t2w": save(folder / "sub-01_T2w.nii.gz", data, affine),
        "cord": save(folder / "sub-01_cord.nii.gz", cord, affine, np.uint8),
        "lesion": save(folder / "sub-01_lesion.nii.gz", lesion, affine, np.uint8),
    }


def write_packages(root: Path) -> dict[str, object]:
    """Tiny real ONNX packages: cord localizer, lesion segmentation, the three classifiers."""
    # lesion: p = sigmoid(4 z - 10) (> 0.5 above z = 2.5: the bright lesion)
    lesion = write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)
    # cord: p = sigmoid(4 z - 2) (> 0.5 above z = 0.5: cord and lesion)
    cord = write_tiny_package(root, "tiny_cord", "cord_localization", weight=4.0, bias=-2.0)
    classifiers = []
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        classifiers.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32),
                                              weight=0.7, bias=-0.4 + 0.2 * k,
                                              card_overrides={"output": output}))
    return {"lesion": lesion, "cord": cord, "classifiers": classifiers}


def custom_args(*folders) -> list[str]:
    """``-custom-model`` arguments for each folder."""
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (and '<dir>' for folders)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        result[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def run_in_child(command: str, argv: list[str], replace_log: str | None = None,
                 kill_before_replace: int | None = None) -> None:
    """Target of a child process: run ``sct_lesion_classify.cli.<command>.main(argv)`` and exit.

    Every ``os.replace`` (the rename that publishes an output) appends its destination to
    ``replace_log``; with ``kill_before_replace = k`` the child sends itself SIGKILL just before
    the k-th one (1-based), i.e. with k - 1 outputs published and the k-th complete in its
    temporary file. The renames into ONNX Runtime's optimised-graph cache are not outputs and
    are not counted (``runtime.graph_cache``: a graph is published before its digest, so a kill
    between them leaves an entry that is rebuilt).
    """
    import importlib
    import os
    import signal
    from pathlib import Path

    from sct_lesion_classify.runtime.graph_cache import graph_cache_root

    real_replace = os.replace
    count = 0
    cache = graph_cache_root()

    def replace(source, destination, *args, **kwargs):
        nonlocal count
        if cache is not None and Path(destination).parent == cache:
            return real_replace(source, destination, *args, **kwargs)
        count += 1
        if kill_before_replace is not None and count == kill_before_replace:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real_replace(source, destination, *args, **kwargs)
        if replace_log is not None:
            with open(replace_log, "a", encoding="utf-8") as log:
                log.write(f"{destination}\n")
        return result

    os.replace = replace
    module = importlib.import_module(f"sct_lesion_classify.cli.{command}")
    code = module.main(argv)
    os._exit(code)
