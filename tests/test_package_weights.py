"""A package's ONNX weights read back into its PyTorch network (train --init-from <package>)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
ort = pytest.importorskip("onnxruntime")

from sct_lesion_classify.errors import InputError  # noqa: E402
from sct_lesion_classify.modelpkg.package import ModelPackage  # noqa: E402
from sct_lesion_classify.train.export import with_cam, with_sigmoid  # noqa: E402
from sct_lesion_classify.train.package_weights import load_package_weights, state_dict_from_onnx  # noqa: E402
from sct_lesion_classify.train.recipes import RECIPES  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("family, shape", [("cord", (2, 1, 64, 96)), ("lesion", (2, 1, 96, 192)),
                                           ("ms_vs_nmosd", (2, 3, 64, 192))])
def test_the_network_read_back_computes_what_the_bundled_onnx_does(family, shape):
    recipe = RECIPES[family]
    network = recipe.build_network()
    origin = load_package_weights(network, MODELS / recipe.name, expected_name=recipe.name)
    package = ModelPackage.load(MODELS / recipe.name)
    assert origin == f"{recipe.name} {package.version} (sha256 {package.sha256})"
    wrapped = (with_cam if recipe.caches_inputs else with_sigmoid)(network).eval()
    batch = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = wrapped(torch.from_numpy(batch))
    expected = (expected[0] if isinstance(expected, tuple) else expected).numpy()
    session = ort.InferenceSession(str(package.onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: batch})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5
    # a freshly initialised network of the same family computes something else
    fresh = (with_cam if recipe.caches_inputs else with_sigmoid)(recipe.build_network()).eval()
    with torch.no_grad():
        other = fresh(torch.from_numpy(batch))
    other = (other[0] if isinstance(other, tuple) else other).numpy()
    assert np.abs(got - other).max() > 1e-3


def test_another_architecture_is_refused_by_name():
    narrower = RECIPES["lesion"].scalable_network(8)
    with pytest.raises(InputError, match="not this family's architecture .*'encoders.0.shortcut.0.weight' has shape"):
        state_dict_from_onnx(narrower, MODELS / "lesion_multiresunet" / "lesion_multiresunet.onnx")
    with pytest.raises(InputError, match=r"not this family's architecture \(missing"):
        state_dict_from_onnx(RECIPES["lesion"].build_network(),
                             MODELS / "cord_localizer" / "cord_localizer.onnx")


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(InputError, match="not a readable ONNX file"):
        state_dict_from_onnx(RECIPES["cord"].build_network(), bad)
