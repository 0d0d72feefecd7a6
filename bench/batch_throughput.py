"""Cohort throughput of ``sct_lesion_classify batch``: subjects per minute at -j 1, -j 2 and on Dask.

A phantom cohort (``N_SUBJECTS`` subjects of 320x320x11 sagittal, two of them corrupted on
purpose) is processed from scratch (``--overwrite``) as a new process each time:

- ``-j 1`` and ``-j 2`` locally (the target: -j 2 at least 1.8x -j 1 on a 2-core machine);
- through a ``dask.distributed.LocalCluster`` of 2 single-threaded worker processes on 127.0.0.1
  (target: within 15% of local -j 2);
- then a rerun without ``--overwrite`` (target: under 10% of the first run's time), with the exit
  code and the ok / failed row counts of the CSV (the 2 corrupted subjects fail, the rest are ok).

Each figure is the median of ``repeats`` runs (at least 1; the first run of each mode warms the
file cache).
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.commands import command_argv

N_SUBJECTS = 40
SHAPE_CANONICAL = (11, 320, 320)


def make_cohort(root: Path) -> Path:
    """The phantom cohort with two corrupted T2w images (truncated and non-NIfTI)."""
    from sct_lesion_classify.phantom.dataset import write_dataset

    bids = root / "cohort"
    subjects = write_dataset(bids, N_SUBJECTS, 31337, shape=SHAPE_CANONICAL)
    broken = [s.t2w for s in subjects[:2]]
    data = broken[0].read_bytes()
    broken[0].write_bytes(data[: len(data) // 3])
    broken[1].write_bytes(b"not a nifti file at all")
    return bids


def _run(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - start, completed.returncode


def _rows(bids: Path) -> dict[str, int]:
    path = bids / "derivatives" / "sct_lesion_classify" / "diagnoses.csv"
    counts: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def run(repeats: int = 1) -> dict:
    """Figures of the module docstring."""
    from bench.pipeline_stages import load_models

    if load_models() is None:
        return {"skipped": "no model packages installed"}
    repeats = max(1, min(repeats, 3))
    results: dict = {"subjects": N_SUBJECTS, "corrupted": 2, "size": "320x320x11"}
    with tempfile.TemporaryDirectory() as tmp:
        bids = make_cohort(Path(tmp))
        base = command_argv(("sct_lesion_classify", "batch"), "sct_lesion_classify.cli.sct_lesion_classify") + [
            "--bids", str(bids), "-v", "0"]
        times = {}
        for jobs in (1, 2):
            measured = [_run(base + ["-j", str(jobs), "--overwrite"]) for _ in range(repeats)]
            times[jobs] = statistics.median(t for t, _ in measured)
            results[f"j{jobs}_s"] = round(times[jobs], 2)
            results[f"j{jobs}_subjects_per_min"] = round(N_SUBJECTS / times[jobs] * 60, 1)
            results[f"j{jobs}_exit_code"] = measured[-1][1]
        results["j2_speedup"] = round(times[1] / times[2], 2)
        results["rows"] = _rows(bids)
        rerun_s, rerun_code = _run(base + ["-j", "2"])
        results["rerun_s"] = round(rerun_s, 2)
        results["rerun_fraction_of_first"] = round(rerun_s / times[2], 3)
        results["rerun_exit_code"] = rerun_code
        try:
            from dask.distributed import LocalCluster
        except ImportError:
            results["dask"] = "skipped: dask[distributed] not installed"
            return results
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            measured = [_run(base + ["--scheduler", cluster.scheduler_address, "--overwrite"])
                        for _ in range(repeats)]
        dask_s = statistics.median(t for t, _ in measured)
        results["dask_localcluster_s"] = round(dask_s, 2)
        results["dask_vs_j2"] = round(dask_s / times[2], 3)
        results["targets"] = {"j2_speedup": ">= 1.8", "dask_vs_j2": "<= 1.15", "rerun_fraction_of_first": "< 0.10"}
    return results
