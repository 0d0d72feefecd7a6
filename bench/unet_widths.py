"""The lesion network's architecture at other channel widths: what a retrain could gain (issue 17).

ONNX Runtime's x86 convolutions work on blocks of 8 channels (NCHWc). The bundled lesion network
(MultiResUNet, 16 base filters, the paper's widths) has blocks of 25, 51, 105, 212 and 426
channels, and normalisations after its concatenations and ReLUs that no convolution absorbs.
This section builds four variants of the same architecture with random weights (untrained: only
the time is measured), exports each to ONNX and times it as the pipeline runs it (2 threads, all
graph optimisations) on 8 tiles of 96 x 640:

- ``paper``: the bundled architecture;
- ``multiple_of_8``: each block's widths rounded up to a multiple of 8 (``width_multiple=8``);
- ``paper_no_post_norm`` and ``multiple_of_8_no_post_norm``: the same without the
  normalisations that follow a concatenation or a ReLU (what an architecture with its
  normalisations only after convolutions leaves).

Figures per variant: median time of ``repeats`` runs after a warm-up, GFLOP (counted from the
ONNX graph by :func:`bench.networks.count_flops`, as the other sections count), GFLOP/s and
parameters. The variants run interleaved, so a
machine that slows during the section slows them alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

TILES = (8, 1, 96, 640)
VARIANTS = {"paper": (1, True), "multiple_of_8": (8, True),
            "paper_no_post_norm": (1, False), "multiple_of_8_no_post_norm": (8, False)}


def build(width_multiple: int, post_norm: bool):
    """The lesion network's architecture (16 base filters) with random normalisation statistics."""
    import torch
    from torch import nn

    from sct_lesion_classify.train.networks.multiresunet import MultiResBlock, MultiResUNet, ResPath

    torch.manual_seed(0)
    net = MultiResUNet(1, 1, base_filters=16, width_multiple=width_multiple)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
        if not post_norm and isinstance(module, MultiResBlock):
            module.bn_concat, module.bn_out = nn.Identity(), nn.Identity()
        if not post_norm and isinstance(module, ResPath):
            for step in module.steps:
                step["bn"] = nn.Identity()
    return net.eval()


def export(net, folder: Path, name: str) -> Path:
    """``net`` as ONNX, with dynamic batch and spatial axes."""
    import torch

    path = folder / f"{name}.onnx"
    torch.onnx.export(net, torch.zeros(1, *TILES[1:]), str(path), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}}, dynamo=False)
    return path


def session(path: Path):
    """An ONNX Runtime session with the pipeline's options (2 threads, all optimisations)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(repeats: int = 5) -> dict:
    import numpy as np

    from bench.networks import count_flops

    tiles = np.random.default_rng(0).standard_normal(TILES).astype(np.float32)
    figures, sessions, times = {}, {}, {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench_widths_") as scratch:
        for name, (multiple, post_norm) in VARIANTS.items():
            net = build(multiple, post_norm)
            path = export(net, Path(scratch), name)
            figures[name] = {"gflop": round(count_flops(path, TILES) / 1e9, 2),
                             "parameters": sum(p.numel() for p in net.parameters())}
            sessions[name] = session(path)
            sessions[name].run(None, {"input": tiles})  # warm-up
        for _ in range(max(repeats, 1)):
            for name, runner in sessions.items():
                start = time.perf_counter()
                runner.run(None, {"input": tiles})
                times[name].append(time.perf_counter() - start)
    seconds = {name: statistics.median(values) for name, values in times.items()}
    for name, entry in figures.items():
        entry.update(seconds=round(seconds[name], 4), gflop_per_s=round(entry["gflop"] / seconds[name], 1),
                     speed_vs_paper=round(seconds["paper"] / seconds[name], 3))
    return {"tiles": "x".join(map(str, TILES)), **figures}
