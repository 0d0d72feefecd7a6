"""The weights of an exported model package, read back into its PyTorch network.

A package holds no PyTorch checkpoint, only ``<name>.onnx``; :func:`sct_lesion_classify.train.export.
export_onnx` keeps every parameter and buffer of the network as an ONNX initializer under its
PyTorch name (behind the export wrapper's ``inner.`` prefix), and
:func:`sct_lesion_classify.train.storage.store_initializers_as_float16` stores the large ones as
float16 (``<name>__float16``) after rounding the network's weights to float16 precision, so the
values read back are exactly those of the exported network. This is what lets ``train
--init-from <package folder>`` fine-tune a bundled model (or one a user installed) on new data
without the checkpoint of the run that made it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sct_lesion_classify.errors import InputError

logger = logging.getLogger(__name__)

#: The prefix the export wrappers (``with_sigmoid``, ``WithCam``) put before the network's names.
WRAPPER_PREFIX = "inner."
#: The suffix of an initializer stored as float16 (``train.storage``).
FLOAT16_SUFFIX = "__float16"
#: Buffers PyTorch keeps that no exported graph needs (BatchNorm's step counter).
UNEXPORTED_SUFFIXES = ("num_batches_tracked",)


def onnx_weights(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """The named initializers of ``onnx_path`` that hold the network's parameters and buffers, as
    float32 arrays keyed by their PyTorch name (wrapper prefix and float16 suffix removed)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as error:  # noqa: BLE001 - onnx raises DecodeError, OSError or ValueError
        raise InputError(f"{onnx_path}: not a readable ONNX file ({type(error).__name__})") from None
    weights: dict[str, np.ndarray] = {}
    for initializer in model.graph.initializer:
        name = initializer.name
        if not name.startswith(WRAPPER_PREFIX):
            continue  # the exporter's own constants (shapes, folded values)
        name = name[len(WRAPPER_PREFIX):]
        if name.endswith(FLOAT16_SUFFIX):
            name = name[: -len(FLOAT16_SUFFIX)]
        array = numpy_helper.to_array(initializer)
        weights[name] = array.astype(np.float32) if np.issubdtype(array.dtype, np.floating) else array
    return weights


def widen_input_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
                        ) -> dict[str, np.ndarray]:
    """``weights`` of a network that sees one slice, made to fit a 2.5D network (``shapes``).

    A convolution kernel of shape ``(out, 1, kh, kw)`` where the network's is ``(out, C, kh, kw)``
    with an odd ``C`` (the slice and its sagittal neighbours, ``train --neighbour-slices``) gets
    the kernel on the middle channel and zeros on the neighbours': the widened network computes
    exactly what the one-slice network did, and fine-tuning learns what the neighbours add. Every
    other weight is returned as it is (a shape that still differs is the caller's error).
    """
    widened = dict(weights)
    for name, array in weights.items():
        shape = tuple(shapes.get(name, array.shape))
        if (array.ndim == 4 and len(shape) == 4 and array.shape[1] == 1 and shape[1] > 1
                and shape[1] % 2 == 1 and (shape[0],) + shape[2:] == (array.shape[0],) + array.shape[2:]):
            wide = np.zeros(shape, dtype=array.dtype)
            wide[:, shape[1] // 2] = array[:, 0]
            widened[name] = wide
            logger.info("initial weights: %s widened from 1 to %d input channels (neighbours at zero)",
                        name, shape[1])
    return widened


def state_dict_from_onnx(model: Any, onnx_path: str | Path) -> dict[str, Any]:
    """A state dict for ``model`` (a PyTorch module) with the weights of ``onnx_path``.

    Every parameter and buffer of ``model`` must be in the graph with the same shape, and every
    network weight of the graph must be in ``model``; BatchNorm's step counters, which no graph
    keeps, take the model's own values.

    Raises
    ------
    InputError
        The file is not ONNX, or its network is not ``model``'s architecture (the message names the
        first name that is missing, extra or of another shape, and how many there are).
    """
    import torch

    own = model.state_dict()
    weights = widen_input_weights(onnx_weights(onnx_path), {k: tuple(v.shape) for k, v in own.items()})
    missing = [name for name in own if name not in weights and not name.endswith(UNEXPORTED_SUFFIXES)]
    extra = [name for name in weights if name not in own]
    if missing or extra:
        first = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise InputError(f"{onnx_path}: its network is not this family's architecture ({first}; "
                         f"{len(missing)} missing, {len(extra)} unexpected weights)")
    state: dict[str, Any] = {}
    for name, tensor in own.items():
        if name not in weights:
            state[name] = tensor.clone()
            continue
        array = weights[name]
        if tuple(array.shape) != tuple(tensor.shape):
            raise InputError(f"{onnx_path}: its network is not this family's architecture "
                             f"({name!r} has shape {tuple(array.shape)}, the network's "
                             f"{tuple(tensor.shape)})")
        state[name] = torch.from_numpy(np.ascontiguousarray(array)).to(tensor.dtype)
    return state


def load_package_weights(model: Any, folder: str | Path, *, expected_name: str | None = None) -> str:
    """Load the weights of the model package in ``folder`` into ``model``, after checking the
    package's sha256 against its card; returns ``"<name> <version> (sha256 <...>)"`` for the card
    of the model trained from it.

    Raises
    ------
    ModelError
        Not a package, or its ONNX file fails verification.
    InputError
        A package of another family (``expected_name``), or another architecture.
    """
    from sct_lesion_classify.modelpkg.package import ModelPackage

    package = ModelPackage.load(folder)
    if expected_name is not None and package.name != expected_name:
        raise InputError(f"--init-from {folder}: a {package.name!r} package; this run trains "
                         f"{expected_name!r}")
    model.load_state_dict(state_dict_from_onnx(model, package.onnx_path))
    logger.info("initial weights from package %s %s", package.name, package.version)
    return f"{package.name} {package.version} (sha256 {package.sha256})"
