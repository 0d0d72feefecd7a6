"""create_session options and Predictor: runs the tiny models, checks batches against the card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sct_lesion_classify.errors import ModelError
from sct_lesion_classify.modelpkg.package import ModelPackage
from sct_lesion_classify.modelpkg.testing import write_tiny_package
from sct_lesion_classify.runtime import session as session_module
from sct_lesion_classify.runtime.session import Predictor, create_session, usable_cores


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_segmentation_predictor(tmp_path):
    package = ModelPackage.load(write_tiny_package(tmp_path, "tiny_seg", weight=2.0, bias=-1.0))
    predictor = Predictor.create(package, threads=1)
    assert (predictor.input_name, predictor.output_name) == ("input", "output")
    batch = np.random.default_rng(0).normal(size=(3, 1, 16, 24))
    result = predictor.predict(batch)
    assert result.dtype == np.float32 and result.shape == (3, 1, 16, 24)
    np.testing.assert_allclose(result, sigmoid(2.0 * batch - 1.0), rtol=1e-5, atol=1e-6)
    # float64 / non-contiguous input is accepted
    assert predictor.predict(np.asfortranarray(batch)).shape == (3, 1, 16, 24)


def test_classifier_predictor(tmp_path):
    package = ModelPackage.load(write_tiny_package(tmp_path, "tiny_cls", "classification"))
    predictor = Predictor.create(package, threads=1)
    batch = np.zeros((2, 3, 32, 32), np.float32)
    batch[1] = 1.0
    result = predictor.predict(batch)
    np.testing.assert_allclose(result[:, 0], sigmoid(np.array([0.0, 3.0])), rtol=1e-5)


@pytest.mark.parametrize("shape, expected", [
    ((1, 2, 16, 16), "expected 1 input channels (T2w), got 2"),
    ((1, 16, 16), "NCHW batch"),
    ((1, 1, 12, 16), "not divisible by 8"),
    ((0, 1, 16, 16), "empty batch"),
])
def test_segmentation_batch_checks(tmp_path, shape, expected):
    predictor = Predictor.create(ModelPackage.load(write_tiny_package(tmp_path)), threads=1)
    with pytest.raises(ModelError, match="model tiny_seg") as info:
        predictor.predict(np.zeros(shape, np.float32))
    assert expected in str(info.value)


def test_classifier_size_check(tmp_path):
    package = ModelPackage.load(write_tiny_package(tmp_path, "tiny_cls", "classification"))
    predictor = Predictor.create(package, threads=1)
    with pytest.raises(ModelError, match="expected slices of 32x32, got 64x64"):
        predictor.predict(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ModelError, match=r"expected 3 input channels \(zeros, T2w, "
                                         r"lesion_mask\), got 2"):
        predictor.predict(np.zeros((1, 2, 32, 32), np.float32))


def test_card_tensor_names_checked(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg", input_name="image")
    with pytest.raises(ModelError, match="input tensor 'input' is not an input of the ONNX graph"):
        Predictor.create(ModelPackage.load(folder), threads=1)
    folder = write_tiny_package(tmp_path / "b", "tiny_seg", output_name="prob")
    with pytest.raises(ModelError, match="output tensor 'output' is not an output"):
        Predictor.create(ModelPackage.load(folder), threads=1)


def test_channel_count_vs_graph(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    card = json.loads((folder / "tiny_seg.json").read_text())
    card["input"]["channels"].append({"name": "T1w", "description": ""})
    (folder / "tiny_seg.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="the ONNX input has 1 channels, the card lists 2"):
        Predictor.create(ModelPackage.load(folder), threads=1)


def test_unloadable_onnx(tmp_path):
    folder = write_tiny_package(tmp_path, "tiny_seg")
    onnx_path = folder / "tiny_seg.onnx"
    onnx_path.write_bytes(b"not a model")
    package = ModelPackage.load(folder, verify=False)
    with pytest.raises(ModelError, match="ONNX Runtime cannot load model package 'tiny_seg'"):
        create_session(package, threads=1)


def test_session_options(tmp_path, monkeypatch):
    """The options of a session built from the package (the graph cache off; see test_graph_cache)."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SCT_LESION_CLASSIFY_ORT_CACHE", "0")
    package = ModelPackage.load(write_tiny_package(tmp_path))
    captured = {}
    real = ort.InferenceSession

    def spy(path, sess_options=None, providers=None):
        captured["options"], captured["providers"] = sess_options, providers
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(session_module, "usable_cores", lambda: 4)
    create_session(package, threads=1)
    options = captured["options"]
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert captured["providers"] == ["CPUExecutionProvider"]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.use_env_allocators") == "1"  # the shared arena
    create_session(package)  # default: all (4) cores, spinning left to ONNX Runtime
    assert captured["options"].intra_op_num_threads == 4
    with pytest.raises(ModelError, match="threads must be >= 1"):
        create_session(package, threads=0)


def test_sessions_on_the_shared_arena_give_the_same_outputs(tmp_path):
    """Two sessions drawing from the process's one arena, and one with its own, agree exactly."""
    ort = pytest.importorskip("onnxruntime")
    assert session_module.shared_arena(ort) is True
    assert session_module.shared_arena(ort) is True  # registered once, later calls reuse it
    package = ModelPackage.load(write_tiny_package(tmp_path, weight=2.0, bias=-1.0))
    batch = np.random.default_rng(3).normal(size=(3, 1, 24, 40)).astype(np.float32)
    first, second = Predictor.create(package, threads=1), Predictor.create(package, threads=1)
    own = ort.InferenceSession(str(package.onnx_path), providers=["CPUExecutionProvider"])
    expected = own.run(None, {"input": batch})[0]
    for predictor in (first, second, first):
        np.testing.assert_array_equal(predictor.predict(batch), expected)


def test_usable_cores():
    assert 1 <= usable_cores() <= 4096


def test_build_in_background_returns_at_once_and_a_read_waits_or_raises():
    import threading

    from sct_lesion_classify.runtime.session import build_in_background

    release = threading.Event()

    def slow():
        release.wait(5)
        return "slow"

    def failing():
        raise ModelError("model x: cannot be loaded")

    pending = build_in_background({"fast": lambda: "fast", "slow": slow, "bad": failing})
    assert list(pending) == ["fast", "slow", "bad"] and len(pending) == 3
    assert pending["fast"] == "fast"
    assert not pending._futures["slow"].done()  # returned before the slow builder finished
    release.set()
    assert pending["slow"] == "slow"
    with pytest.raises(ModelError, match="cannot be loaded"):
        pending["bad"]  # the builder's own error, where the value is read
    view = pending.only({"slow": "s", "fast": "f"})
    assert dict(view) == {"s": "slow", "f": "fast"}


def test_classification_models_in_background_run_the_same_sessions():
    from sct_lesion_classify.pipeline.classification import ClassificationModels
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.runtime.session import Pending

    selection = select_models(segment=True, cord_localizer=True)
    waited = ClassificationModels.load(selection, threads=1)
    pending = ClassificationModels.load(selection, threads=1, in_background=True)
    assert isinstance(pending.classifiers, Pending) and isinstance(pending.segmentation.built, Pending)
    assert list(pending.classifiers) == list(waited.classifiers)
    assert list(pending.segmentation.built) == list(waited.segmentation.built) == ["cord", "lesion"]
    batch = np.random.default_rng(0).normal(size=(2, 3, 64, 192)).astype(np.float32)
    for role, classifier in waited.classifiers.items():
        other = pending.classifiers[role]
        assert other.package.sha256 == classifier.package.sha256
        np.testing.assert_array_equal(other._predictor.predict(batch), classifier._predictor.predict(batch))
    slices = np.random.default_rng(1).normal(size=(1, 1, 64, 64)).astype(np.float32)
    for name in ("cord", "lesion"):
        ours, theirs = (getattr(models.segmentation, name) for models in (pending, waited))
        assert ours.package.sha256 == theirs.package.sha256
        np.testing.assert_array_equal(ours._segmenter.predictor.predict(slices),
                                      theirs._segmenter.predictor.predict(slices))
    pending.wait_for_sessions()


def test_a_failed_segmentation_session_leaves_no_classifier_session_building(monkeypatch,
                                                                             slow_classifier_sessions):
    from sct_lesion_classify.pipeline import classification
    from sct_lesion_classify.pipeline.models import select_models

    from sct_lesion_classify.pipeline import segmentation

    def failing(*args, **kwargs):
        raise ModelError("model lesion: cannot be loaded")

    monkeypatch.setattr(segmentation, "LesionSegmenter", failing)
    selection = select_models(segment=True, cord_localizer=True)
    models = classification.ClassificationModels.load(selection, threads=1, in_background=True)
    with pytest.raises(ModelError, match="cannot be loaded"):
        models.segmentation.lesion  # the error is raised where the model is first used
    models.wait_for_sessions()  # what the command does before it returns, also after an error
    assert not slow_classifier_sessions()


def test_build_concurrently_raises_the_first_failing_keys_error_after_all_finished():
    import threading
    import time

    from sct_lesion_classify.runtime.session import build_concurrently

    finished = threading.Event()

    def first_fails_late():
        time.sleep(0.2)
        raise ModelError("model a: cannot be loaded")

    def second_fails_early():
        raise ModelError("model b: cannot be loaded")

    def slow_success():
        time.sleep(0.3)
        finished.set()
        return "c"

    assert build_concurrently({"a": lambda: 1, "b": lambda: 2}) == {"a": 1, "b": 2}
    with pytest.raises(ModelError, match="model a"):
        build_concurrently({"a": first_fails_late, "b": second_fails_early, "c": slow_success})
    assert finished.is_set()
