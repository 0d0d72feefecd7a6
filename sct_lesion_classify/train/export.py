"""ONNX export of a trained network, its parity check, and the model package files.

:func:`export_onnx` writes the network (with its output activation, :func:`with_sigmoid`) with a
dynamic batch axis (and dynamic height and width for the fully convolutional segmentation
networks); :func:`onnx_parity` runs ONNX Runtime and PyTorch on fresh random inputs of two batch
sizes (and two sizes for dynamic H/W) and returns the largest absolute difference over every
output, which :func:`write_package` asserts to be below :data:`PARITY_TOLERANCE` before it writes
the card. Classifiers are exported with :func:`with_cam`: a second output (the class-activation
map, see :mod:`sct_lesion_classify.train.networks.densenet`), named by the card's
``output.cam_tensor`` (:data:`sct_lesion_classify.train.recipes.CAM_OUTPUT`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.atomic import atomic_path, write_json_atomic
from sct_lesion_classify.modelpkg.card import ModelCard
from sct_lesion_classify.modelpkg.package import file_sha256
from sct_lesion_classify.train.storage import round_weights_to_float16, store_initializers_as_float16

logger = logging.getLogger(__name__)

#: Largest accepted |ONNX Runtime - PyTorch| on the parity inputs (float32, eval mode).
PARITY_TOLERANCE = 1e-4
OPSET = 18


def _torch():
    import torch

    return torch


def with_sigmoid(model: Any) -> Any:
    """``model`` followed by a sigmoid: the exported graph outputs probabilities."""
    torch = _torch()

    class _WithSigmoid(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.inner(x))

    return _WithSigmoid(model)


def with_cam(model: Any) -> Any:
    """A MONAI DenseNet classifier with outputs ``(sigmoid(logit), cam)`` (see ``WithCam``)."""
    from sct_lesion_classify.train.networks.densenet import WithCam

    return WithCam(model)


def export_onnx(model: Any, path: str | os.PathLike, *, in_channels: int,
                example_hw: tuple[int, int], dynamic_hw: bool, input_name: str = "input",
                output_name: str = "output", extra_outputs: Sequence[str] = ()) -> None:
    """Export ``model`` (float32, eval mode, on the CPU) to ONNX at ``path`` (atomically).

    Parameters
    ----------
    model
        The network including its output activation.
    in_channels, example_hw
        Shape of the example input ``(2, in_channels, *example_hw)`` used for tracing.
    dynamic_hw
        Also make height and width dynamic (fully convolutional networks).
    extra_outputs
        Names of the model's further outputs (it then returns a tuple), e.g. ``("cam",)``.
    """
    torch = _torch()
    model = model.to("cpu", dtype=torch.float32).eval()
    model = model.to(memory_format=torch.contiguous_format)
    example = torch.randn(2, in_channels, *example_hw)
    dynamic = torch.export.Dim.DYNAMIC
    axes = {0: dynamic}
    if dynamic_hw:
        axes.update({2: dynamic, 3: dynamic})
    path = Path(path)
    # optimize=False keeps BatchNormalization as its own node: the exporter's optimizer would fold
    # it into the convolution before it, and the folded weights are no longer the float16-rounded
    # ones, so float16 storage would change the network. ONNX Runtime folds them itself, in
    # float32, when it builds the session, provided the convolution's bias is a constant: the
    # exporter types a missing bias with CastLike on the input, which resolve_castlike turns into
    # a Cast (runtime.graph_rewrite; without it no fusion applied and the lesion model ran 1.75x
    # slower).
    try:
        with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad():
            program = torch.onnx.export(
                model, (example,), input_names=[input_name],
                output_names=[output_name, *extra_outputs],
                dynamic_shapes=(axes,), opset_version=OPSET,
                dynamo=True, external_data=False, verbose=False, optimize=False)
            program.save(str(tmp))
            _resolve_castlike_in_file(tmp)
    except (RuntimeError, ValueError, TypeError) as exc:  # exporter failures
        raise ProcessingError(f"{path}: ONNX export failed ({str(exc).splitlines()[0][:300]})") from exc


def _resolve_castlike_in_file(path: Path) -> None:
    import onnx

    from sct_lesion_classify.runtime.graph_rewrite import resolve_castlike

    model = onnx.load(str(path))
    if resolve_castlike(model):
        onnx.save(model, str(path))


def onnx_parity(model: Any, onnx_path: str | os.PathLike, input_shapes: Sequence[tuple[int, ...]],
                seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over fresh random inputs of ``input_shapes``.

    Every output of the graph is compared (a model with several outputs returns a tuple, in the
    graph's output order). The inputs are standard normal values from a generator seeded with ``seed`` (never the
    tracing example); the model runs in float32 eval mode on the CPU.
    """
    import onnxruntime as ort

    torch = _torch()
    model = model.to("cpu", dtype=torch.float32).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, min(2, os.cpu_count() or 1))
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in input_shapes:
        batch = rng.standard_normal(shape).astype(np.float32)
        expected_all = _run_torch(model, batch)
        got_all = session.run(None, {input_name: batch})
        if len(got_all) != len(expected_all):
            raise ProcessingError(f"{onnx_path}: the ONNX graph has {len(got_all)} outputs, the "
                                  f"PyTorch model {len(expected_all)}")
        for name, got, expected in zip((o.name for o in session.get_outputs()), got_all,
                                       expected_all):
            if got.shape != expected.shape:
                raise ProcessingError(f"{onnx_path}: ONNX output {name!r} shape {got.shape} differs "
                                      f"from PyTorch's {expected.shape} for input {shape}")
            worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected))))
    return worst


def _run_torch(model: Any, batch: np.ndarray) -> tuple[np.ndarray, ...]:
    torch = _torch()
    with torch.no_grad():
        result = model(torch.from_numpy(batch))
    results = result if isinstance(result, (tuple, list)) else (result,)
    return tuple(r.double().numpy() for r in results)


@dataclass(frozen=True)
class ExportResult:
    """Where the package went and what the parity check measured."""

    folder: Path
    onnx_path: Path
    card_path: Path
    sha256: str
    parity_max_abs_diff: float
    parity_shapes: tuple[tuple[int, ...], ...]


def parity_shapes(in_channels: int, example_hw: tuple[int, int], dynamic_hw: bool,
                  divisible_by: int) -> tuple[tuple[int, ...], ...]:
    """Two batch sizes, and for dynamic H/W a second size, for :func:`onnx_parity`."""
    first = (3, in_channels, *example_hw)
    if not dynamic_hw:
        return (first, (1, in_channels, *example_hw))
    other = tuple(size + divisible_by for size in example_hw)
    return (first, (1, in_channels, *other))


def write_package(folder: str | os.PathLike, name: str, model: Any, card: dict[str, Any], *,
                  in_channels: int, example_hw: tuple[int, int], dynamic_hw: bool,
                  divisible_by: int = 1, seed: int = 0,
                  extra_outputs: Sequence[str] = ()) -> ExportResult:
    """Export ``model`` to ``folder/<name>.onnx``, check parity, write ``folder/<name>.json``.

    ``card`` is the complete model card except ``files`` and ``metrics.onnx_parity_max_abs_diff``,
    which are filled in here; it is validated against the card schema before it is written. The
    weights are rounded to float16 precision before export and stored as float16
    (:mod:`~sct_lesion_classify.train.storage`), so all of ``models/`` fits a clone; the parity
    check compares the stored network with the PyTorch model of the same rounded weights, on
    every output (``extra_outputs`` names the outputs after ``output``, e.g. ``("cam",)`` for a
    model wrapped with :func:`with_cam`).

    Raises
    ------
    ProcessingError
        Export failure, or a parity difference of :data:`PARITY_TOLERANCE` or more.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"{name}.onnx"
    card_path = folder / f"{name}.json"
    round_weights_to_float16(model)
    export_onnx(model, onnx_path, in_channels=in_channels, example_hw=example_hw,
                dynamic_hw=dynamic_hw, extra_outputs=extra_outputs)
    storage = store_initializers_as_float16(onnx_path)
    logger.info("%s: weights stored as float16 (%d initializers, %d kept float32, %.1f MB -> %.1f MB)", onnx_path.name,
                storage["converted_initializers"], storage["kept_float32_initializers"], storage["bytes_before"] / 1e6,
                storage["bytes_after"] / 1e6)
    shapes = parity_shapes(in_channels, example_hw, dynamic_hw, divisible_by)
    diff = onnx_parity(model, onnx_path, shapes, seed=seed + 1)
    logger.info("ONNX parity on fresh random inputs %s: max |ORT - PyTorch| = %.3g", shapes, diff)
    if not diff < PARITY_TOLERANCE:
        raise ProcessingError(f"{onnx_path}: ONNX output differs from PyTorch by {diff:.3g} "
                              f"(tolerance {PARITY_TOLERANCE:g})")
    sha = file_sha256(onnx_path)
    card = dict(card)
    card["metrics"] = {**card.get("metrics", {}),
                       "onnx_parity_max_abs_diff": diff,
                       "onnx_parity_inputs": [list(shape) for shape in shapes],
                       "weights_storage": "float16 on disk (rounded before export); float32 arithmetic"}
    card["files"] = {"onnx": onnx_path.name, "sha256": sha}
    ModelCard.from_json(card, source=card_path)  # schema and consistency checks
    write_json_atomic(card_path, card)
    return ExportResult(folder, onnx_path, card_path, sha, diff, shapes)
