"""Tiny model packages for tests (any module's tests, not only ``modelpkg``'s).

The ONNX graphs are built with the ``onnx`` package (a test dependency), imported lazily inside
:func:`tiny_onnx_bytes`: the inference path never imports this module.

- segmentation tasks: ``sigmoid(conv1x1(x))``, input ``(N, C, H, W)`` with dynamic N, H, W,
  output ``(N, 1, H, W)``;
- classification: ``sigmoid(gemm(global_average_pool(x)))``, output ``(N, 1)`` = P(positive class).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sct_lesion_classify.modelpkg.card import (
    Architecture, Channel, Decision, Files, InputSpec, ModelCard, Normalization, OutputSpec,
    Postprocessing, Subjects, Training,
)

CLASSIFIER_CHANNELS = (
    Channel("zeros", "the paper's cT1w channel, all zeros for a T2w-only model"),
    Channel("T2w", "sagittal T2-weighted slice"),
    Channel("lesion_mask", "binary lesion mask of the slice"),
)


def tiny_onnx_bytes(task: str = "lesion_segmentation", n_channels: int = 1,
                    spatial_size: tuple[int, int] | None = None, *, weight: float = 1.0,
                    bias: float = 0.0, input_name: str = "input", output_name: str = "output",
                    opset: int = 17) -> bytes:
    """Serialized ONNX model of a tiny network (see the module docstring)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = spatial_size if spatial_size is not None else ("H", "W")
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_channels, height, width])
    if task == "classification":
        y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1])
        w = numpy_helper.from_array(np.full((n_channels, 1), weight, np.float32), "w")
        b = numpy_helper.from_array(np.full((1,), bias, np.float32), "b")
        nodes = [
            helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], [output_name]),
        ]
    else:
        y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1, height, width])
        w = numpy_helper.from_array(np.full((1, n_channels, 1, 1), weight, np.float32), "w")
        b = numpy_helper.from_array(np.full((1,), bias, np.float32), "b")
        nodes = [
            helper.make_node("Conv", [input_name, "w", "b"], ["logit"], kernel_shape=[1, 1]),
            helper.make_node("Sigmoid", ["logit"], [output_name]),
        ]
    graph = helper.make_graph(nodes, f"tiny_{task}", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="sct_lesion_classify.modelpkg.testing")
    model.ir_version = 8  # readable by onnxruntime >= 1.16
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_card(name: str, task: str = "lesion_segmentation", *, version: str = "1.0.0",
              sha256: str = "0" * 64, n_channels: int | None = None,
              spatial_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """A valid card document for a tiny package (override fields on the returned dict)."""
    classification = task == "classification"
    if n_channels is None:
        n_channels = 3 if classification else 1
    first = CLASSIFIER_CHANNELS if classification else (Channel("T2w", "sagittal T2-weighted slice"),)
    channels = first[:n_channels] + tuple(Channel(f"extra{i}", "")
                                          for i in range(len(first), n_channels))
    if not classification and n_channels % 2 == 1 and n_channels > 1:  # a 2.5D package
        reach = n_channels // 2
        channels = tuple(Channel("T2w" if k == 0 else f"T2w_sagittal{k:+d}", "sagittal T2-weighted slice")
                         for k in range(-reach, reach + 1))
    inputs = InputSpec(
        tensor="input", layout="NCHW", channels=channels, slicing="sagittal",
        spatial_size=tuple(spatial_size or (32, 32)) if classification else spatial_size,
        size_divisible_by=1 if classification else 8,
        spacing_mm=None if classification else (0.5, 0.5),
        normalization=Normalization("zscore", clip=(-5.0, 5.0),
                                    rescale=(0.0, 1.0) if classification else None),
        crop_margins_mm=None if task == "cord_localization" else (10.0, 10.0, 20.0),
        min_lesion_area_mm2=1.0 if classification else None)
    output = (OutputSpec("output", "sigmoid", ("demyelinating", "tumor"), "tumor") if classification
              else OutputSpec("output", "sigmoid", ("background", "foreground"), "foreground"))
    card = ModelCard(
        card_version=1, name=name, version=version, task=task,
        description=f"tiny {task} model for tests",
        architecture=Architecture("tiny", n_channels + 1, {}),
        input=inputs, output=output,
        postprocessing=None if classification else Postprocessing(
            threshold=0.5, fill_holes=True, largest=False, remove_small=("20mm3",)),
        decision=Decision("mean", 0.1) if classification else None,
        training=Training(synthetic_data=True, data="none (test fixture)", command="tests", seed=0,
                          commit="0" * 40, wall_time_s=0.0, device="cpu",
                          subjects=Subjects(0, 0), framework="onnx.helper"),
        metrics={}, files=Files(f"{name}.onnx", sha256), license="MIT", intended_use="tests only")
    return card.to_json()


def write_tiny_package(parent: str | os.PathLike, name: str = "tiny_seg",
                       task: str = "lesion_segmentation", *, version: str = "1.0.0",
                       n_channels: int | None = None, spatial_size: tuple[int, int] | None = None,
                       folder_name: str | None = None, card_overrides: dict[str, Any] | None = None,
                       **onnx_kwargs: Any) -> Path:
    """Write ``parent/<folder_name or name>/{<name>.onnx, <name>.json}`` and return the folder.

    ``card_overrides`` is merged into the card (top-level keys replaced) after the sha256 is set.
    """
    card = tiny_card(name, task, version=version, n_channels=n_channels, spatial_size=spatial_size)
    channels = len(card["input"]["channels"])
    size = tuple(card["input"]["spatial_size"]) if card["input"]["spatial_size"] else None
    payload = tiny_onnx_bytes(task, channels, size, **onnx_kwargs)
    folder = Path(parent) / (folder_name or name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.onnx").write_bytes(payload)
    card["files"]["sha256"] = hashlib.sha256(payload).hexdigest()
    card = copy.deepcopy({**card, **(card_overrides or {})})
    (folder / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return folder
