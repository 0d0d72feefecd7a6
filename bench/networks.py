"""Each network at a representative input: ONNX Runtime against PyTorch eager, and against the CPU's limit.

- ONNX Runtime: the package's session (as the commands build it), median of ``repeats`` runs.
- PyTorch eager: the training recipe's network (same architecture; weights do not change the
  speed), ``torch.inference_mode``, same threads. Skipped without the ``train`` extra.
- Limit: the network's multiply-add FLOPs counted from the ONNX graph (Conv, ConvTranspose, Gemm,
  MatMul, with shapes inferred at the benchmark input) divided by the time, as a fraction of a
  measured float32 GEMM rate (numpy matmul of 2048 x 2048 matrices, same threads).

- Threads: ONNX Runtime again with one intra-op thread. ``thread_scaling`` is the one-thread
  time over the all-cores time; ``cores / thread_scaling`` bounds what ``batch -j <cores>`` (one
  thread per process) can gain over ``-j 1`` (all cores in one process) on compute-bound work.

Representative inputs are those of a 512x512x15 sagittal subject at 0.6 mm in-plane: the cord
localizer sees 15 slices resampled to 1 mm (about 320 x 320 mm field of view); each classifier
4 lesion slices at its card's ``input.spatial_size`` (64 x 192 for the bundled 2.0.0 lesion-region
classifiers, 256 x 256 for a whole-slice one). The lesion model sees tiles of the crop around the cord at 0.5 mm
(0.8 M pixels in 13 tiles at 512x512x15); its input here, 6 slices of 80 x 640 at 0.5 mm (the same
region in mm on the card's grid), has the same cost per pixel (5.6-6.3 us per pixel measured for
tiles from 64 x 128 to 8 x 144 x 608).

``lesion_per_subject`` counts the lesion network's FLOPs on the tiles the pipeline itself feeds it
for the bench's 512x512x15 phantom (its segmentation run once, every batch recorded by
:mod:`bench.network_calls`): the figure of the lesion model's cost budget.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

#: package name -> (NCHW input shape, recipe family, in-plane mm of that shape's H x W); a card with
#: a fixed spatial_size (the classifiers) sets H x W itself, the others see the same region in mm on
#: their card's grid
INPUTS = {
    "cord_localizer": ((15, 1, 320, 320), "cord", 1.0),
    "lesion_multiresunet": ((6, 1, 80, 640), "lesion", 0.5),
    "tumor_vs_demyelinating": ((4, 3, 256, 256), "tumor_vs_demyelinating", None),
    "astrocytoma_vs_ependymoma": ((4, 3, 256, 256), "astrocytoma_vs_ependymoma", None),
    "ms_vs_nmosd": ((4, 3, 256, 256), "ms_vs_nmosd", None),
}


def _median_time(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matrix-multiply rate of this CPU (GFLOP/s, numpy/BLAS, all threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    seconds = _median_time(lambda: a @ b, repeats)
    return 2.0 * size ** 3 / seconds / 1e9


def count_flops(onnx_path, input_shape: tuple[int, ...]) -> float | None:
    """Multiply-add FLOPs (2 per MAC) of Conv/ConvTranspose/Gemm/MatMul at ``input_shape``.

    None without the ``onnx`` package.
    """
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(onnx_path))
    graph_input = model.graph.input[0]
    for dim, value in zip(graph_input.type.tensor_type.shape.dim, input_shape):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    # Weights stored in float16 reach the operators through a Cast: follow it to the initializer.
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0] in shapes:
            shapes.setdefault(node.output[0], shapes[node.input[0]])
    total = 0.0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            inp = shapes.get(node.input[0])
            if not weight or not out or not inp:
                continue
            kernel = int(np.prod(weight[2:]))
            if node.op_type == "Conv":  # weight (Cout, Cin/g, k...)
                total += 2.0 * out[0] * int(np.prod(out[1:])) * weight[1] * kernel
            else:  # weight (Cin, Cout/g, k...): every input voxel scatters into Cout/g x kernel
                total += 2.0 * inp[0] * int(np.prod(inp[1:])) * weight[1] * kernel
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not a or not b:
                continue
            k = a[-1]
            n = b[0] if (node.op_type == "Gemm" and any(x.name == "transB" and x.i for x in node.attribute)) else b[-1]
            total += 2.0 * int(np.prod(a[:-1])) * k * n
    return total


def _recipe_of(family: str, card=None):
    """The family's recipe, at the card's width where the card records one (the lesion model)."""
    from sct_lesion_classify.train.recipes import RECIPES

    recipe = RECIPES[family]
    width = None if card is None else card.architecture.details.get("base_filters")
    return recipe if width is None else recipe.with_grid(base_filters=width)


def _torch_time(family: str, shape: tuple[int, ...], repeats: int, card=None) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    network = _recipe_of(family, card).build_network().eval()
    batch = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    with torch.inference_mode():
        return _median_time(lambda: network(batch), repeats)


#: The bench subject of the lesion model's cost budget (A-P x S-I x sagittal slices).
BUDGET_SIZE = (512, 512, 15)


def lesion_per_subject() -> dict:
    """FLOPs of the lesion network on the pipeline's own tiles of the :data:`BUDGET_SIZE` phantom.

    The segmentation runs once, with every batch the lesion package is fed recorded
    (:func:`bench.network_calls.recording`); the FLOPs are counted from the graph at each batch's shape.
    """
    import tempfile
    from pathlib import Path

    from bench.network_calls import flops_of, recording
    from bench.pipeline_stages import load_models, write_subject
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest, run_segmentation

    models = load_models()
    if models is None:
        return {"skipped": "no models"}
    package = models.segmentation.lesion.package
    with tempfile.TemporaryDirectory() as tmp, recording() as calls:
        paths = write_subject(Path(tmp) / "subject", BUDGET_SIZE)
        run_segmentation(SegmentationRequest(image_path=paths["t2w"],
                                             output_path=Path(tmp) / "lesion.nii.gz"),
                         models.segmentation)
    batches = calls[package.name]
    flops = flops_of(package.onnx_path, batches)
    if flops is None:
        return {"skipped": "FLOPs not countable (onnx shape inference unavailable)"}
    pixels = sum(n * h * w for n, _, h, w in batches)
    card = package.card
    return {"subject": "x".join(map(str, BUDGET_SIZE)), "grid_mm": list(card.input.spacing_mm),
            "base_filters": card.architecture.details.get("base_filters"), "tile_pixels": pixels,
            "tiles": sum(n for n, *_ in batches), "kflop_per_pixel": round(flops / pixels / 1e3, 1),
            "gflop": round(flops / 1e9, 2)}


def run(repeats: int = 5) -> dict:
    """ONNX Runtime and PyTorch times, FLOPs and the fraction of the GEMM rate, per network."""
    from sct_lesion_classify.errors import InputError, ModelError
    from sct_lesion_classify.modelpkg.registry import resolve
    from sct_lesion_classify.runtime.session import Predictor, usable_cores
    from sct_lesion_classify.train.recipes import same_extent_on_grid

    rate = gemm_rate()
    results: dict = {"gemm_float32_gflops": round(rate, 1), "threads": usable_cores()}
    for name, (shape, family, reference_mm) in INPUTS.items():
        try:
            package = resolve(name)
        except (InputError, ModelError) as exc:
            results[name] = {"skipped": str(exc)}
            continue
        if package.card.input.spatial_size is not None:  # fixed-size inputs follow the card
            shape = (*shape[:2], *package.card.input.spatial_size)
        elif reference_mm is not None:  # the same region in mm on the card's grid
            spec = package.card.input
            shape = (*shape[:2], *same_extent_on_grid(shape[2:], (reference_mm,) * 2, spec.spacing_mm,
                                                      spec.size_divisible_by))
        predictor = Predictor.create(package)
        batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        ort_s = _median_time(lambda: predictor.predict(batch), repeats)
        entry = {"input": "x".join(map(str, shape)), "onnxruntime_s": round(ort_s, 4)}
        if usable_cores() > 1:
            single = Predictor.create(package, threads=1)
            one_thread_s = _median_time(lambda: single.predict(batch), repeats)
            entry["onnxruntime_1_thread_s"] = round(one_thread_s, 4)
            entry["thread_scaling"] = round(one_thread_s / ort_s, 2)
            del single
        torch_s = _torch_time(family, shape, repeats, package.card)
        if torch_s is not None:
            entry["pytorch_eager_s"] = round(torch_s, 4)
            entry["onnxruntime_speedup"] = round(torch_s / ort_s, 2)
        flops = count_flops(package.onnx_path, shape)
        if flops:
            entry["gflop"] = round(flops / 1e9, 2)
            entry["achieved_gflops"] = round(flops / ort_s / 1e9, 1)
            entry["fraction_of_gemm_rate"] = round(flops / ort_s / 1e9 / rate, 3)
        results[name] = entry
    results["lesion_per_subject"] = lesion_per_subject()
    return results
