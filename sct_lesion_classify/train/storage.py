"""Compact storage of exported networks: float16 weights on disk, float32 arithmetic at run time.

Three DenseNet121 (7 M parameters each) and a MultiResUNet (7 M) take 115 MB as float32: over the
100 MB that a clone of the repository may carry for models. Before export the network's weights
are rounded to float16 precision (:func:`round_weights_to_float16`), so the ONNX parity check
compares like with like; after export each large float32 initializer is stored as float16 and a
``Cast`` back to float32 is inserted (:func:`store_initializers_as_float16`). ONNX Runtime folds
those casts when it builds the session: the network still computes in float32, at float32 speed
(float16 arithmetic was slower on this CPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: Initializers smaller than this (elements) stay float32: biases and norms are not worth casting.
MIN_ELEMENTS = 1024


def round_weights_to_float16(model: Any) -> Any:
    """Round every floating parameter and buffer of a PyTorch module to float16 precision, in place."""
    import torch

    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    return model


def store_initializers_as_float16(path: str | os.PathLike, *, min_elements: int = MIN_ELEMENTS) -> dict:
    """Rewrite an ONNX file with its large float32 initializers stored as float16 + ``Cast``.

    Only initializers whose values are all exactly representable in float16 (see
    :func:`round_weights_to_float16`) are converted, so the stored network computes exactly what
    the rounded PyTorch network does; others (constants the exporter folded) stay float32. Returns counts: initializers converted and bytes before/after.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    converted, kept_float32, before = 0, 0, path.stat().st_size
    new_initializers, casts = [], []
    for initializer in graph.initializer:
        array = numpy_helper.to_array(initializer)
        if initializer.data_type != TensorProto.FLOAT or array.size < min_elements:
            new_initializers.append(initializer)
            continue
        if not np.array_equal(array.astype(np.float16).astype(np.float32), array):
            # Not a rounded weight (e.g. a constant the exporter folded from several): keep it
            # float32, so storage never changes what the network computes.
            new_initializers.append(initializer)
            kept_float32 += 1
            continue
        half_name = f"{initializer.name}__float16"
        new_initializers.append(numpy_helper.from_array(array.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [initializer.name], to=TensorProto.FLOAT,
                                      name=f"{initializer.name}__cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return {"converted_initializers": converted, "kept_float32_initializers": kept_float32,
            "bytes_before": before, "bytes_after": path.stat().st_size}
