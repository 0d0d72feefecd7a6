"""The pipeline on phantom subjects of three sizes: each stage in process, the commands as processes.

For each size (A-P x S-I x sagittal slices: 320x320x11, 512x512x15, 768x768x19) one phantom
subject is written, the models are loaded once, and after a warm-up the median of ``repeats`` runs
is taken of:

- each stage of ``sct_classify_lesion -i`` in process (load, localize, crop, segment, postprocess,
  morphometry, classify per model, write), from the ``runtime_s`` the pipeline records;
- at 512x512x15 only, the same segmentation without the crop (the whole field of view), for the
  cascade's gain (at most 3 runs: without the crop the MultiResUNet sees the whole field of view,
  tens of seconds per run at the larger sizes);
- the whole commands as new processes: ``sct_deepseg_imlesion -i`` (with and without ``-no-crop``),
  ``sct_classify_lesion -i`` (segmentation included) and ``sct_classify_lesion -i -lesion -s``
  (classification given the masks), with each run's peak RSS;
- the floor of each network stage: the FLOPs of the batches the pipeline fed its network
  (:mod:`bench.network_calls`) over the float32 GEMM rate measured at the start of the section,
  and each stage's time as a multiple of its floor (``floor_ratio``); the same for the whole
  ``sct_classify_lesion -i`` process against the sum of the floors. A ratio holds across machines
  where seconds do not.

The bundled (or installed) models are used; without them the section says so and measures nothing.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.commands import command_argv
from bench.phantom_generation import SIZES, canonical_shape

NO_CROP_SIZE = "512x512x15"  # the size of the issue targets; the cascade's gain is measured there
NO_CROP_MAX_REPEATS = 3

#: Issue 17's targets (2-core CPU of the development machine).
TARGETS = {"512x512x15": {"segment_process_s": 1.2, "classify_given_mask_process_s": 0.6,
                          "classify_with_segmentation_process_s": 2.0,
                          "classify_with_segmentation_peak_rss_mb": 600}}


# Runs one command and prints its wall time and peak RSS. The benchmark process grows to several
# GB (models, whole-field-of-view segmentations), and Linux counts the RSS of the process that
# forks into the child's ru_maxrss (vfork/fork, then exec); the command is started from this small
# launcher instead, so what is inherited is at most the launcher's ~12 MB.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(process.pid, 0)
elapsed = time.perf_counter() - start
stderr = process.stderr.read().decode(errors="replace")
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "elapsed_s": elapsed,
                  "maxrss_mb": usage.ru_maxrss / 1024.0, "stderr": stderr[-500:]}))
"""


def run_process(argv: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of one process run to completion (raises if it fails)."""
    import json

    completed = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True,
                               check=True)
    result = json.loads(completed.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result['code']}: {result['stderr'].strip()}")
    return result["elapsed_s"], result["maxrss_mb"]


def write_subject(folder: Path, shape_ap_si_rl: tuple[int, int, int]) -> dict[str, Path]:
    """One ependymoma phantom of the given size; returns its BIDS paths."""
    from sct_lesion_classify.phantom.dataset import write_subject as write_bids_subject
    from sct_lesion_classify.phantom.subject import generate_subject

    subject = generate_subject(12345, "ependymoma", shape=canonical_shape(shape_ap_si_rl))
    return write_bids_subject(folder, subject)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _stage_medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({key for run in runs for key in run})
    return {key: _median([run.get(key, 0.0) for run in runs]) for key in keys}


def load_models():
    """The default packages, loaded once (None when they are not installed)."""
    from sct_lesion_classify.errors import ModelError, InputError
    from sct_lesion_classify.pipeline.classification import ClassificationModels
    from sct_lesion_classify.pipeline.models import select_models

    try:
        return ClassificationModels.load(select_models(segment=True, cord_localizer=True))
    except (ModelError, InputError) as exc:
        print(f"  (no models: {exc})")
        return None


def in_process(paths: dict[str, Path], models, out: Path, repeats: int, without_crop: bool,
               gemm_gflops: float) -> dict:
    """Stage medians of the whole pipeline and (``without_crop``) of the segmentation without the crop."""
    from sct_lesion_classify.pipeline.classification import ClassificationRequest, run_classification
    from sct_lesion_classify.pipeline.options import SegmentationOptions
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest, run_segmentation

    def classify_once() -> dict[str, float]:
        request = ClassificationRequest(
            segmentation=SegmentationRequest(image_path=paths["t2w"], output_path=out / "lesion.nii.gz"),
            output_path=out / "diagnosis.json")
        start = time.perf_counter()
        outputs = run_classification(request, models)
        stages = dict(outputs.document.provenance.runtime_s)
        stages["total_in_process"] = time.perf_counter() - start
        return stages

    def segment_once(crop: bool) -> dict[str, float]:
        request = SegmentationRequest(image_path=paths["t2w"], output_path=out / f"lesion-crop{int(crop)}.nii.gz",
                                      options=SegmentationOptions(crop=crop))
        outputs = run_segmentation(request, models.segmentation)
        return dict(outputs.runtime_s)

    from bench.network_calls import recording

    with recording() as calls:
        classify_once()
    stages = _stage_medians([classify_once() for _ in range(repeats)])
    floors = network_floors(models, calls, stages, gemm_gflops)
    if not without_crop:
        return {"stages_median_s": stages, "network_floors": floors}
    no_crop_repeats = min(repeats, NO_CROP_MAX_REPEATS)
    segment_once(True)
    segment_once(False)
    cropped = _stage_medians([segment_once(True) for _ in range(no_crop_repeats)])
    whole_view = _stage_medians([segment_once(False) for _ in range(no_crop_repeats)])
    gain = {
        "runs": no_crop_repeats,
        "segment_with_crop_s": cropped.get("segment"),
        "segment_without_crop_s": whole_view.get("segment"),
        "segmentation_with_crop_total_s": round(sum(cropped.values()), 4),
        "segmentation_without_crop_total_s": round(sum(whole_view.values()), 4),
    }
    if cropped.get("segment"):
        gain["speedup_of_crop"] = round(whole_view["segment"] / cropped["segment"], 2)
    return {"stages_median_s": stages, "network_floors": floors, "cascade": gain}


def network_floors(models, calls: dict, stages: dict[str, float], gemm_gflops: float) -> dict:
    """Per network stage: GFLOP fed, floor (s) at the GEMM rate, and the measured time over the floor."""
    from bench.network_calls import flops_of

    selection = models.selection
    stage_of = {}
    if selection.cord is not None:
        stage_of[selection.cord.name] = ("segmentation_localize", selection.cord)
    if selection.lesion is not None:
        stage_of[selection.lesion.name] = ("segmentation_segment", selection.lesion)
    for role, package in selection.classifiers.items():
        stage_of[package.name] = (f"classify_{role}", package)
    floors = {}
    for name, shapes in calls.items():
        if name not in stage_of:
            continue
        stage, package = stage_of[name]
        flops = flops_of(package.onnx_path, shapes)
        if flops is None or not gemm_gflops:
            continue
        floor = flops / (gemm_gflops * 1e9)
        entry = {"gflop": round(flops / 1e9, 2), "floor_s": round(floor, 4)}
        if stages.get(stage):
            entry["stage_s"] = stages[stage]
            entry["floor_ratio"] = round(stages[stage] / floor, 2)
        floors[stage] = entry
    return floors


def as_process(paths: dict[str, Path], out: Path, repeats: int, without_crop: bool) -> dict:
    """The commands as a user runs them: medians of wall time and peak RSS."""
    command = command_argv(("sct_classify_lesion",), "sct_lesion_classify.cli.classify_lesion")
    segment = command_argv(("sct_deepseg_imlesion",), "sct_lesion_classify.cli.deepseg_imlesion")
    runs = {
        "segment": segment + ["-i", str(paths["t2w"]), "-o", str(out / "s1.nii.gz"), "-v", "0"],
        "classify_with_segmentation": command + ["-i", str(paths["t2w"]), "-o", str(out / "p1.json"),
                                                 "-v", "0"],
        "classify_given_mask": command + ["-i", str(paths["t2w"]), "-lesion", str(paths["lesion_mask"]),
                                          "-s", str(paths["cord_mask"]), "-o", str(out / "p2.json"), "-v", "0"],
    }
    if without_crop:
        runs["segment_without_crop"] = segment + ["-i", str(paths["t2w"]), "-o", str(out / "s2.nii.gz"),
                                                  "-no-crop", "-v", "0"]
    figures = {}
    for label, argv in runs.items():
        n = min(repeats, NO_CROP_MAX_REPEATS) if label == "segment_without_crop" else repeats
        run_process(argv)
        measured = [run_process(argv) for _ in range(n)]
        figures[f"{label}_process_s"] = _median([m[0] for m in measured])
        figures[f"{label}_peak_rss_mb"] = round(max(m[1] for m in measured), 1)
    return figures


def run(repeats: int = 5) -> dict:
    """Figures per size (see the module docstring)."""
    logging.getLogger("sct_lesion_classify").setLevel(logging.ERROR)  # the phantom's warnings are noise here
    from bench.networks import gemm_rate

    models = load_models()
    if models is None:
        return {"skipped": "no model packages installed"}
    rate = gemm_rate()
    results = {"gemm_float32_gflops": round(rate, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SIZES:
            label = "x".join(map(str, shape))
            folder = Path(tmp) / label
            paths = write_subject(folder, shape)
            out = folder / "out"
            out.mkdir()
            entry = in_process(paths, models, out, repeats, without_crop=label == NO_CROP_SIZE, gemm_gflops=rate)
            entry["process"] = as_process(paths, out, repeats, without_crop=label == NO_CROP_SIZE)
            floor_sum = sum(f["floor_s"] for f in entry["network_floors"].values())
            if floor_sum:
                entry["network_floors"]["sum_of_floors_s"] = round(floor_sum, 4)
                entry["network_floors"]["classify_with_segmentation_process_ratio"] = round(
                    entry["process"]["classify_with_segmentation_process_s"] / floor_sum, 2)
            entry["runs"] = repeats
            if label in TARGETS:
                entry["targets"] = TARGETS[label]
            results[label] = entry
    return results
