"""Determinism (issue 8): the same input and models give byte-identical masks and identical
diagnosis probabilities, in the same process and in another one (another hash seed).

Only what depends on the run is allowed to differ: paths in the command line and sidecar
``Sources``, the JSON ``provenance`` date and runtimes, and QC entry ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_data import custom_args, write_packages, write_subject
from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion

REPO = Path(__file__).resolve().parents[1]
STEM = "sub-01_T2w"


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return write_packages(tmp_path_factory.mktemp("models"))


def _copy(subject: dict[str, Path], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    return {key: Path(shutil.copy(path, folder / path.name)) for key, path in subject.items()}


def _in_child(command: str, argv: list[str], hash_seed: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    code = f"import sys; from sct_lesion_classify.cli.{command} import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


def _comparable(document: dict) -> dict:
    """The diagnosis document without what legitimately changes from run to run."""
    document = json.loads(json.dumps(document))
    document["input"]["path"] = document["lesion_mask"]["path"] = None
    if document.get("cord_mask"):
        document["cord_mask"]["path"] = None
    provenance = document["provenance"]
    provenance["date"] = provenance["command_line"] = None
    provenance["runtime_s"] = sorted(provenance["runtime_s"])  # the stages, not their durations
    return document


def test_segmentation_is_byte_identical(tmp_path, packages):
    subject = write_subject(tmp_path / "source")
    runs = []
    for k, where in enumerate(["process", "process", "child"]):
        paths = _copy(subject, tmp_path / f"run{k}")
        argv = (["-i", str(paths["t2w"]), "-save-cord", "1", "-v", "0"]
                + custom_args(packages["lesion"], packages["cord"]))
        soft = ["-i", str(paths["t2w"]), "-s", str(paths["cord"]), "-thr", "0", "-o",
                str(paths["t2w"].parent / "soft.nii.gz"), "-v", "0"] + custom_args(packages["lesion"])
        if where == "process":
            assert deepseg_imlesion.main(argv) == 0 and deepseg_imlesion.main(soft) == 0
        else:
            _in_child("deepseg_imlesion", argv, hash_seed="12345")
            _in_child("deepseg_imlesion", soft, hash_seed="54321")
        folder = paths["t2w"].parent
        runs.append({name: (folder / name).read_bytes() for name in
                     (f"{STEM}_lesion_seg.nii.gz", f"{STEM}_seg.nii.gz", f"{STEM}_cropbox.nii.gz", "soft.nii.gz")})
        sidecar = json.loads((folder / f"{STEM}_lesion_seg.json").read_text())
        runs[-1]["models"] = json.dumps(sidecar["GeneratedBy"][0]["Models"]).encode()
    assert runs[0] == runs[1] == runs[2]


def test_diagnosis_is_identical(tmp_path, packages):
    subject = write_subject(tmp_path / "source")
    documents = []
    for k, (where, with_lesion) in enumerate([("process", True), ("process", True), ("child", True),
                                               ("process", False), ("child", False)]):
        paths = _copy(subject, tmp_path / f"run{k}")
        argv = ["-i", str(paths["t2w"]), "-s", str(paths["cord"]), "-v", "0"]
        if with_lesion:
            argv += ["-lesion", str(paths["lesion"])] + custom_args(*packages["classifiers"])
        else:
            argv += custom_args(packages["lesion"], *packages["classifiers"])
        if where == "process":
            assert classify_lesion.main(argv) == 0
        else:
            _in_child("classify_lesion", argv, hash_seed=str(100 + k))
        folder = paths["t2w"].parent
        documents.append(json.loads((folder / f"{STEM}_diagnosis.json").read_text()))
        if not with_lesion:
            documents[-1]["mask_bytes"] = (folder / f"{STEM}_lesion_seg.nii.gz").read_bytes().hex()
    with_user_mask, automatic = documents[:3], documents[3:]
    for group in (with_user_mask, automatic):
        first = group[0]
        assert first["diagnosis"] is not None
        for other in group[1:]:
            assert other["classifiers"] == first["classifiers"]  # probabilities, slices: exact
            assert other["diagnosis"] == first["diagnosis"]
            assert _comparable(other) == _comparable(first)
