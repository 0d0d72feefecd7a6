"""The CastLike rewrite: same outputs, and the convolution it frees gets ONNX Runtime's fusions."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sct_lesion_classify.runtime.graph_rewrite import normalized_graph, resolve_castlike  # noqa: E402


def exporter_style_graph() -> "onnx.ModelProto":
    """Conv without bias as torch.onnx writes it (zero bias typed by CastLike on the input), BN, ReLU."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    bn = [rng.uniform(0.5, 1.5, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2.0, 4)]
    initializers = [numpy_helper.from_array(weight, "W")] + [
        numpy_helper.from_array(a.astype(np.float32), n) for a, n in zip(bn, ("scale", "b", "mean", "var"))]
    nodes = [
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("CastLike", ["zero", "input"], ["zero_f"]),
        helper.make_node("Shape", ["W"], ["w_shape"], start=0, end=1),
        helper.make_node("Expand", ["zero_f", "w_shape"], ["bias"]),
        helper.make_node("Conv", ["input", "W", "bias"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "scale", "b", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "exporter_style",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 4, "h", "w"])], initializers)
    # IR version 8, the least opset 18 allows: onnx's default (14) is newer than onnxruntime 1.21 reads (10)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def _optimised_ops(model_bytes: bytes, tmp_path) -> tuple[list[str], np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(1).normal(size=(2, 1, 16, 24)).astype(np.float32)
    output = session.run(None, {"input": batch})[0]
    ops = [node.op_type for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    return ops, output


def test_castlike_becomes_cast_and_the_batch_norm_is_fused(tmp_path):
    model = exporter_style_graph()
    before_ops, before = _optimised_ops(model.SerializeToString(), tmp_path)
    assert "BatchNormalization" in before_ops  # the bias depends on the input: nothing fused

    assert resolve_castlike(model) == 1
    (cast,) = [node for node in model.graph.node if node.op_type == "Cast"]
    assert list(cast.input) == ["zero"] and helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT
    assert not [node for node in model.graph.node if node.op_type == "CastLike"]
    onnx.checker.check_model(model)
    after_ops, after = _optimised_ops(model.SerializeToString(), tmp_path)
    assert "BatchNormalization" not in after_ops and "Expand" not in after_ops
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    assert resolve_castlike(model) == 0  # idempotent


def test_castlike_of_unknown_type_is_left_alone():
    model = exporter_style_graph()
    model.graph.node[1].input[1] = "untyped"  # not an input, initializer or typed value
    assert resolve_castlike(model) == 0


def test_normalized_graph_of_files(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(exporter_style_graph(), str(path))
    graph = normalized_graph(path)
    assert graph is not None and b"CastLike" not in graph
    path.write_bytes(graph)
    assert normalized_graph(path) is None  # nothing left to change
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert normalized_graph(tmp_path / "bad.onnx") is None  # ONNX Runtime reports it


def test_export_writes_no_castlike(tmp_path):
    pytest.importorskip("onnxscript")
    torch = pytest.importorskip("torch")
    from sct_lesion_classify.train.export import export_onnx, onnx_parity

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU()).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, in_channels=1, example_hw=(16, 16), dynamic_hw=True)
    assert "CastLike" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    assert onnx_parity(model, path, ((2, 1, 16, 16), (1, 1, 24, 32)), seed=0) < 1e-5
