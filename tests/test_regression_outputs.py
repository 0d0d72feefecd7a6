"""Regression guard: both commands give the recorded outputs on every testing_data subject and the
shared real scan, with the bundled models.

For each image, ``sct_deepseg_imlesion -save-cord 1`` and ``sct_classify_lesion -gradcam 1`` run in
process. Recorded in ``tests/regression_outputs.json``: the sha256 of every NIfTI written (of the
decompressed file, so header, affine and voxels count, the gzip time stamp does not) and the
diagnosis JSON without its date and run times, with temporary paths replaced by ``<out>``,
``<repo>`` and ``<realdata>``. Masks must be byte-identical; the JSON equal (floats within the
JSON's rounding of 6 decimals, 2e-6).

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
FLOAT_TOLERANCE = 2e-6  # the diagnosis JSON rounds probabilities to 6 decimals

pytestmark = pytest.mark.slow


def _cases() -> list[tuple[str, Path]]:
    cases = [(s.participant_id, s.t2w) for s in discover_subjects(TESTING_DATA)]
    real = REALDATA / "sub-unf01" / "anat" / "sub-unf01_T2w.nii.gz"
    if real.is_file():
        cases.append(("realdata/sub-unf01", real))
    return cases


def _nifti_sha256(path: Path) -> str:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return hashlib.sha256(data).hexdigest()


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
    niftis = {str(p.relative_to(out)): _nifti_sha256(p)
              for p in sorted(out.rglob("*.nii*"))}
    return {"nifti_sha256": niftis,
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
    assert actual["nifti_sha256"], "no NIfTI output written"
    if RECORD:
        recorded["cases"][name] = actual
        return
    if name not in recorded["cases"]:
        pytest.fail(f"no recorded outputs for {name}; record them (see this module's docstring)")
    expected = recorded["cases"][name]
    assert actual["nifti_sha256"] == expected["nifti_sha256"]
    differences = _differences(expected["diagnosis"], actual["diagnosis"])
    assert not differences, "diagnosis JSON changed:\n" + "\n".join(differences[:20])
