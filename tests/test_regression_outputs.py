"""Regression guard: both commands give the recorded outputs on every testing_data subject and the
shared real scan, with the bundled models.

For each image, ``sct_deepseg_imlesion -save-cord 1`` and ``sct_classify_lesion -gradcam 1`` run in
process. Recorded in ``tests/regression_outputs.json``: the sha256 of every mask written (of the
decompressed file, so header, affine and voxels count, the gzip time stamp does not), the header
sha256 and voxel sum and maximum of every float map (the Grad-CAM maps), and the diagnosis JSON
without its date and run times, with temporary paths replaced by ``<out>``, ``<repo>`` and
``<realdata>``. Masks must be byte-identical; float maps equal within :data:`MAP_TOLERANCE`; the
JSON equal with its floats within :data:`FLOAT_TOLERANCE`. The tolerances are those of the ONNX
graph itself: ONNX Runtime's fused kernels (BatchNormalization folded into the convolution in
float32, ``runtime.graph_rewrite``) change a network's outputs in the last bits (the cards'
``onnx_parity_max_abs_diff``: 2e-7 to 2.4e-6), which a probability rounded to 6 decimals or a
map's hash can show.

The expected values change only with the models: they are tied to the sha256 of the bundled
packages. After a retrain, regenerate them with::

    SCT_LESION_CLASSIFY_RECORD=1 python -m pytest tests/test_regression_outputs.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from pathlib import Path

import pytest

from sct_lesion_classify.cli import classify_lesion, deepseg_imlesion
from sct_lesion_classify.io.bids import discover_subjects
from sct_lesion_classify.modelpkg.registry import resolve
from sct_lesion_classify.pipeline.models import DEFAULT_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
TESTING_DATA = ROOT / "testing_data"
REALDATA = ROOT.parent / "shared" / "realdata"
EXPECTED = Path(__file__).with_name("regression_outputs.json")
RECORD = os.environ.get("SCT_LESION_CLASSIFY_RECORD") == "1"
FLOAT_TOLERANCE = 2e-6  # the JSON rounds to 6 decimals; the fused kernels moved them by 1e-6 at most
MAP_TOLERANCE = 1e-5  # relative, on the sum and the maximum of a float map

pytestmark = pytest.mark.slow


def _cases() -> list[tuple[str, Path]]:
    cases = [(s.participant_id, s.t2w) for s in discover_subjects(TESTING_DATA)]
    real = REALDATA / "sub-unf01" / "anat" / "sub-unf01_T2w.nii.gz"
    if real.is_file():
        cases.append(("realdata/sub-unf01", real))
    return cases


def _nifti_record(path: Path) -> str | dict:
    """A mask's sha256; a float map's header sha256, voxel sum and maximum."""
    import nibabel as nib
    import numpy as np

    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    image = nib.Nifti1Image.from_bytes(data)
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return hashlib.sha256(data).hexdigest()
    voxels = np.asarray(image.dataobj, dtype=np.float64)
    return {"header_sha256": hashlib.sha256(data[:int(image.header["vox_offset"])]).hexdigest(),
            "sum": float(voxels.sum()), "max": float(voxels.max())}


def _same_nifti(expected: str | dict, actual: str | dict) -> bool:
    if isinstance(expected, str) or isinstance(actual, str):
        return expected == actual
    return expected["header_sha256"] == actual["header_sha256"] and all(
        math.isclose(expected[k], actual[k], rel_tol=MAP_TOLERANCE, abs_tol=MAP_TOLERANCE) for k in ("sum", "max"))


def _normalized(value, replacements: list[tuple[str, str]]):
    """The JSON with paths made machine-independent."""
    if isinstance(value, dict):
        return {k: _normalized(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
    return value


def _diagnosis_for_comparison(path: Path, out: Path) -> dict:
    document = json.loads(path.read_text())
    document["provenance"].pop("date")
    document["provenance"].pop("runtime_s")
    return _normalized(document, [(str(out), "<out>"), (str(REALDATA), "<realdata>"), (str(ROOT), "<repo>")])


def _models_fingerprint() -> dict[str, str]:
    return {name: resolve(name).sha256 for name in sorted(set(DEFAULT_PACKAGES.values()))}


def _run_case(image: Path, out: Path) -> dict:
    seg_dir, cls_dir = out / "segment", out / "classify"
    assert deepseg_imlesion.main(["-i", str(image), "-o", str(seg_dir / "lesion.nii.gz"),
                                  "-save-cord", "1", "-v", "0"]) == 0
    assert classify_lesion.main(["-i", str(image), "-o", str(cls_dir / "diagnosis.json"),
                                 "-gradcam", "1", "-v", "0"]) == 0
    niftis = {str(p.relative_to(out)): _nifti_record(p)
              for p in sorted(out.rglob("*.nii*"))}
    return {"niftis": niftis,
            "diagnosis": _diagnosis_for_comparison(cls_dir / "diagnosis.json", out)}


def _differences(expected, actual, where: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                found.append(f"{where}/{key}: only in {'expected' if key in expected else 'actual'}")
            else:
                found += _differences(expected[key], actual[key], f"{where}/{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items expected, {len(actual)} found"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in _differences(e, a, f"{where}[{i}]")]
    if (isinstance(expected, float) or isinstance(actual, float)) and not isinstance(expected, bool) \
            and isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if math.isclose(expected, actual, rel_tol=0.0, abs_tol=FLOAT_TOLERANCE):
            return []
        return [f"{where}: expected {expected!r}, found {actual!r}"]
    return [] if expected == actual else [f"{where}: expected {expected!r}, found {actual!r}"]


@pytest.fixture(scope="module")
def recorded() -> dict:
    if RECORD:
        return {"models": {}, "cases": {}}
    if not EXPECTED.is_file():
        pytest.fail(f"{EXPECTED} is missing; record it with SCT_LESION_CLASSIFY_RECORD=1")
    return json.loads(EXPECTED.read_text())


@pytest.fixture(scope="module", autouse=True)
def _write_record(recorded):
    yield
    if RECORD:
        recorded["models"] = _models_fingerprint()
        EXPECTED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def test_recorded_outputs_belong_to_the_bundled_models(recorded):
    if RECORD:
        pytest.skip("recording")
    assert recorded["models"] == _models_fingerprint(), (
        "the bundled models changed: record the expected outputs again (see this module's docstring)")


@pytest.mark.parametrize("name,image", _cases(), ids=[c[0] for c in _cases()])
def test_outputs_are_unchanged(name, image, recorded, tmp_path):
    actual = _run_case(image, tmp_path)
    assert actual["niftis"], "no NIfTI output written"
    if RECORD:
        recorded["cases"][name] = actual
        return
    if name not in recorded["cases"]:
        pytest.fail(f"no recorded outputs for {name}; record them (see this module's docstring)")
    expected = recorded["cases"][name]
    assert sorted(actual["niftis"]) == sorted(expected["niftis"]), "other NIfTI files written"
    changed = [name for name in expected["niftis"]
               if not _same_nifti(expected["niftis"][name], actual["niftis"][name])]
    assert not changed, f"NIfTI outputs changed: {changed}"
    differences = _differences(expected["diagnosis"], actual["diagnosis"])
    assert not differences, "diagnosis JSON changed:\n" + "\n".join(differences[:20])
