"""Time to generate one phantom subject, and to write it as BIDS, per size."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

#: Sizes as clinicians name them: in-plane A-P x S-I, then the number of sagittal slices.
SIZES = ((320, 320, 11), (512, 512, 15), (768, 768, 19))


def canonical_shape(ap_si_rl: tuple[int, int, int]) -> tuple[int, int, int]:
    """The library's canonical array shape (R-L slices, A-P, S-I) of an AP x SI x RL size."""
    ap, si, rl = ap_si_rl
    return (rl, ap, si)


def run(repeats: int = 5) -> dict:
    """Median generation time (after a warm-up) for each size; the 512x512x15 target is < 5 s."""
    from sct_lesion_classify.phantom import generate_subject, write_dataset

    results = {}
    for shape in SIZES:
        label = "x".join(map(str, shape))
        generate_subject(0, "ependymoma", shape=canonical_shape(shape))
        times = []
        for k in range(repeats):
            diagnosis = ("astrocytoma", "ependymoma", "MS", "NMOSD", "astrocytoma")[k % 5]
            start = time.perf_counter()
            generate_subject(100 + k, diagnosis, shape=canonical_shape(shape))
            times.append(time.perf_counter() - start)
        results[label] = {"generate_median_s": round(statistics.median(times), 3),
                          "generate_max_s": round(max(times), 3), "runs": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_dataset(Path(tmp) / "ds", 4, 1, shape=canonical_shape((512, 512, 15)))
        results["write_dataset_4x512x512x15_s"] = round(time.perf_counter() - start, 3)
    return results
