"""What the networks of a pipeline run compute: every batch each package is fed, and its FLOPs.

:func:`recording` wraps :class:`~sct_lesion_classify.runtime.session.Predictor` for the time of a
``with`` block and collects the shape of every batch each package runs (the pipeline's own tiles,
slices and lesion regions, whatever the image). :func:`flops_of` turns them into multiply-add
FLOPs counted from the ONNX graph (:func:`bench.networks.count_flops`, once per distinct shape).
Benchmarks only: the library does not know it is being watched.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path


@contextlib.contextmanager
def recording():
    """``with recording() as calls:`` -> ``calls[package name]`` lists the (N, C, H, W) batches run."""
    from sct_lesion_classify.runtime.session import Predictor

    calls: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    original = Predictor._run

    def watched(self, batch, names):
        calls[self.package.name].append(tuple(int(n) for n in batch.shape))
        return original(self, batch, names)

    Predictor._run = watched
    try:
        yield calls
    finally:
        Predictor._run = original


_PER_SHAPE: dict[tuple[str, tuple[int, ...]], float | None] = {}


def flops_of(onnx_path: str | Path, shapes: list[tuple[int, ...]]) -> float | None:
    """FLOPs of running the graph on each batch shape of ``shapes`` (None: not countable here).

    Every convolution scales with the batch size, so one count per distinct (C, H, W) serves all
    batch sizes.
    """
    from bench.networks import count_flops

    total = 0.0
    for shape in shapes:
        key = (str(onnx_path), (1, *shape[1:]))
        if key not in _PER_SHAPE:
            _PER_SHAPE[key] = count_flops(onnx_path, key[1])
        if _PER_SHAPE[key] is None:
            return None
        total += shape[0] * _PER_SHAPE[key]
    return total
