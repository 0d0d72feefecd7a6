"""How often each trust level fires, per set of images (issue 18: thresholds measured, not guessed).

Two steps, so that thresholds can be changed without running the networks again::

    # 1. run the pipeline (cord, lesion, classifiers) on every T2w of each set; keep what the
    #    checks read (masks, cord pieces, classifier results) in <out>/<set>/<subject>.pkl
    python -m bench.trust_levels run -o runs/trust/bench \
        --set in_distribution=runs/trust/id --set shifted=runs/trust/shifted ...
    # 2. apply the checks (sct_lesion_classify.trust, the current THRESHOLDS) and print the tables
    python -m bench.trust_levels table runs/trust/bench

``limits`` applies the rule that chose the measured limits of ``trust.ranges.THRESHOLDS`` to the
records of the selection sets (their phantoms' truth masks tell which results failed)::

    python -m bench.trust_levels limits runs/trust/bench --sets sel_2002 sel_7007

``tilted`` writes the failure of issue 18 as a phantom set: a cord tilted 30 degrees in the sagittal
plane and bright posterior muscles (a ``randomised`` draw with the posture and muscle contrast set)::

    python -m bench.trust_levels tilted -o runs/trust/tilted -n 4 --seed 5005

The sets used for ``models/README.md`` ("Trust flags") are listed there with their seeds.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import io
import math
import pickle
import sys
from pathlib import Path
from typing import Sequence

import numpy as np


def t2w_images(root: Path) -> list[Path]:
    """The T2w images of a BIDS folder (``sub-*/anat/*_T2w.nii.gz``), sorted."""
    return sorted(Path(root).glob("sub-*/anat/sub-*_T2w.nii.gz"))


# ------------------------------------------------------------------------------------ step 1
def run_sets(sets: dict[str, Path], out: Path, threads: int | None = None) -> None:
    """Run the pipeline on every image of ``sets``; one record per image in ``out/<set>/``."""
    from sct_lesion_classify.pipeline.classification import (
        ClassificationModels, ClassificationRequest, classification_stage, lesion_mask_stage, load_inputs,
        measure)
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.errors import LesionClassifyError
    from sct_lesion_classify.pipeline.segmentation import SegmentationRequest

    models = ClassificationModels.load(select_models(segment=True, cord_localizer=True), threads=threads)
    for name, root in sets.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in t2w_images(root):
            record_path = folder / f"{path.name.split('_')[0]}.pkl"
            if record_path.exists():
                continue
            request = ClassificationRequest(
                segmentation=SegmentationRequest(image_path=path, output_path=folder / path.name.replace(
                    "_T2w.nii.gz", "_T2w_lesion_seg.nii.gz")),
                output_path=folder / path.name.replace("_T2w.nii.gz", "_diagnosis.json"))
            inputs = load_inputs(request)
            try:
                lesion = lesion_mask_stage(request, models, inputs)
            except LesionClassifyError as exc:  # the command stops with this error: no result
                record_path.write_bytes(pickle.dumps({"image": str(path), "error": str(exc)}))
                print(f"{name}/{record_path.stem}: {exc}", flush=True)
                continue
            used, _ = models.for_image(with_t1c=False)
            classified = classification_stage(request, used, inputs, lesion, measure(inputs, lesion))
            cord = lesion.cord
            record = {"image": str(path), "lesion": np.packbits(lesion.mask), "shape": lesion.mask.shape,
                      "cord": None if cord is None else np.packbits(cord.mask),
                      "pieces": 1 if cord is None else cord.pieces,
                      "kept_share": 1.0 if cord is None else cord.kept_share,
                      "results": dict(classified.results), "diagnosis": classified.diagnosis}
            record_path.write_bytes(pickle.dumps(record))
            print(f"{name}/{record_path.stem}", flush=True)


# ------------------------------------------------------------------------------------ step 2
def assess_record(record: dict, packages, limits=None):
    """The trust assessment and the raw measures of one record of step 1."""
    from sct_lesion_classify.cord.localize import CordLocalization
    from sct_lesion_classify.io.image import load_image
    from sct_lesion_classify.trust import assess, classification_checks, segmentation_checks
    from sct_lesion_classify.trust.measures import acquisition_measures, cord_profile, lesion_measures
    from sct_lesion_classify.trust.ranges import THRESHOLDS

    limits = limits or THRESHOLDS
    image = load_image(record["image"])
    shape, size = tuple(record["shape"]), int(np.prod(record["shape"]))
    lesion = np.unpackbits(record["lesion"], count=size).reshape(shape).astype(bool)
    cord = None
    if record["cord"] is not None:
        mask = np.unpackbits(record["cord"], count=size).reshape(shape).astype(bool)
        cord = CordLocalization(mask=mask, source="builtin", pieces=record["pieces"],
                                kept_share=record["kept_share"])
    trust = assess([*segmentation_checks(image.data, image.zooms, cord, lesion, packages, limits),
                    *classification_checks(record["results"], record["diagnosis"], limits)])
    measures: dict[str, float] = {"cord_pieces": record["pieces"], "cord_kept_share": record["kept_share"]}
    if cord is not None and (profile := cord_profile(cord.mask, image.zooms, lesion, image.data)) is not None:
        end = profile.inferior_end
        measures.update({k: v for k, v in dataclasses.asdict(profile).items() if k != "inferior_end"})
        measures.update({f"end_{k}": (math.nan if end is None else getattr(end, k))
                         for k in ("distance_to_edge_mm", "taper", "cord_below_share")})
        measures["end_is_conus"] = float(end is not None and end.is_conus)
    if (lesion_m := lesion_measures(lesion, None if cord is None else cord.mask, image.zooms)) is not None:
        measures.update({f"lesion_{k}": float(v) for k, v in dataclasses.asdict(lesion_m).items()})
    measures.update(dataclasses.asdict(acquisition_measures(image.data, image.zooms,
                                                            None if cord is None else cord.mask)))
    for role, result in record["results"].items():
        measures[f"spread_{role}"] = float(np.std(result.slice_probabilities))
    if record["results"]:
        measures["slice_spread"] = max(measures[f"spread_{role}"] for role in record["results"])
    if record["diagnosis"] is not None:
        measures.update({f"distance_{k}": abs(v - 0.5) for k, v in record["diagnosis"].deciding_probabilities.items()})
    return trust, measures


def truth_measures(record: dict) -> dict[str, float | str]:
    """Cord and lesion Dice of a record's masks against its phantom's truth masks, and the true
    diagnosis (``{}`` where the BIDS set has no labels: a real scan)."""
    from sct_lesion_classify.io.bids import read_participants, subject_paths
    from sct_lesion_classify.io.image import load_image
    from sct_lesion_classify.train.evaluation.metrics import dice

    image = Path(record["image"])
    root, participant = image.parents[2], image.name.split("_")[0]
    paths = subject_paths(root, participant)
    if not (paths["cord_mask"].is_file() and paths["lesion_mask"].is_file()):
        return {}
    shape, size = tuple(record["shape"]), int(np.prod(record["shape"]))
    measured: dict[str, float | str] = {
        "truth": read_participants(root).get(participant, {}).get("diagnosis", ""),
        "predicted": "" if record["diagnosis"] is None else record["diagnosis"].most_likely_class}
    for name, key in (("cord", "cord_mask"), ("lesion", "lesion_mask")):
        truth = load_image(paths[key]).data > 0.5
        mask = None if record[name] is None else np.unpackbits(record[name], count=size).reshape(shape)
        measured[f"{name}_dice"] = math.nan if mask is None else dice(mask.astype(bool), truth)
    return measured


def tables(out: Path) -> str:
    """Markdown: the share of each level per set, then how often each code fired per set; and a
    CSV of every record's measures beside it (``out/measures.csv``)."""
    from sct_lesion_classify.pipeline.models import select_models

    packages = select_models(segment=True, cord_localizer=True).packages(with_t1c=False, segmented=True)
    levels: dict[str, collections.Counter] = {}
    codes: dict[str, collections.Counter] = {}
    rows = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for record_path in sorted(folder.glob("*.pkl")):
            record = pickle.loads(record_path.read_bytes())
            if "error" in record:  # the command failed with an error: no output to trust
                levels.setdefault(folder.name, collections.Counter())["failed"] += 1
                rows.append({"set": folder.name, "subject": record_path.stem, "level": "failed",
                             "flags": record["error"]})
                continue
            trust, measures = assess_record(record, packages)
            levels.setdefault(folder.name, collections.Counter())[trust.level] += 1
            codes.setdefault(folder.name, collections.Counter()).update(trust.codes)
            rows.append({"set": folder.name, "subject": record_path.stem, "level": trust.level,
                         "flags": ";".join(trust.codes), **truth_measures(record), **measures})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in row.items()} for row in rows)
    (out / "measures.csv").write_text(buffer.getvalue(), encoding="utf-8")
    sets = list(levels)
    lines = ["| set | n | ok | review | unreliable | failed (error, no output) |", "|---|---|---|---|---|---|"]
    for name in sets:
        n = sum(levels[name].values())
        lines.append(f"| {name} | {n} | " + " | ".join(f"{levels[name][lv]} ({levels[name][lv] / n:.0%})"
                                                      for lv in ("ok", "review", "unreliable", "failed")) + " |")
    all_codes = sorted({c for counter in codes.values() for c in counter})
    lines += ["", "| code | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines += [f"| `{code}` | " + " | ".join(str(codes[name][code]) for name in sets) + " |" for code in all_codes]
    return "\n".join(lines)


# ------------------------------------------------------------------------- the limits' rule
#: A result whose masks failed (against the phantom's truth): the checks are there to flag it, so
#: it does not set a limit.
FAILED_CORD_DICE = 0.8
FAILED_LESION_DICE = 0.3
#: Measured limit -> (the measure of ``assess_record`` it bounds, "upper" or "lower").
RULED_LIMITS = {"cord_pieces": ("cord_pieces", "upper"), "cord_kept_share": ("cord_kept_share", "lower"),
                "cord_coverage": ("coverage", "lower"), "lesion_components": ("lesion_components", "upper"),
                "slice_spread": ("slice_spread", "upper")}
#: Limits whose value has a meaning of its own (reported beside the rule's value, not set by it).
MEANING_LIMITS = {"cord_gap_mm": ("longest_gap_mm", "upper"), "lesion_cord_ratio": ("lesion_cord_ratio", "upper"),
                  "lesion_outside_share": ("lesion_outside_share", "upper")}


def rule_limit(values: Sequence[float], side: str) -> float:
    """The rule: beyond the selection set's most extreme value by half its distance from the
    median (``side``: "upper" for a limit above which a check fires, "lower" below which)."""
    values = np.asarray(values, float)
    median = float(np.median(values))
    extreme = float(values.max() if side == "upper" else values.min())
    return extreme + 0.5 * (extreme - median)


def selection_limits(out: Path, sets: Sequence[str]) -> str:
    """Markdown: per measured limit, the selection sets' median and extreme over the results whose
    masks did not fail, the rule's limit and the current one (``trust.ranges.THRESHOLDS``)."""
    from sct_lesion_classify.pipeline.models import select_models
    from sct_lesion_classify.trust.ranges import THRESHOLDS

    packages = select_models(segment=True, cord_localizer=True).packages(with_t1c=False, segmented=True)
    kept, failed = [], []
    for name in sets:
        for record_path in sorted((out / name).glob("*.pkl")):
            record = pickle.loads(record_path.read_bytes())
            if "error" in record:
                failed.append(f"{name}/{record_path.stem} (error)")
                continue
            truth = truth_measures(record)
            if truth.get("cord_dice", 1.0) < FAILED_CORD_DICE or truth.get("lesion_dice", 1.0) < FAILED_LESION_DICE:
                failed.append(f"{name}/{record_path.stem} (cord Dice {truth['cord_dice']:.2f}, "
                              f"lesion Dice {truth['lesion_dice']:.2f})")
                continue
            kept.append(assess_record(record, packages)[1])
    lines = [f"{len(kept)} results; failed masks left out: {', '.join(failed) or 'none'}", "",
             "| limit | side | median | extreme | rule | current |", "|---|---|---|---|---|---|"]
    for limit, (measure, side) in {**RULED_LIMITS, **MEANING_LIMITS}.items():
        values = [m[measure] for m in kept if measure in m and math.isfinite(m[measure])]
        ruled = rule_limit(values, side)
        current = getattr(THRESHOLDS, limit)
        note = "" if limit in RULED_LIMITS else " (meaning)"
        lines.append(f"| {limit} | {side} | {np.median(values):.3g} | "
                     f"{max(values) if side == 'upper' else min(values):.3g} | {ruled:.3g} | {current:.3g}{note} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- the failure
def write_tilted(out: Path, n: int, seed: int, pitch_deg: float = 30.0) -> None:
    """Phantoms of the failure of issue 18: cord tilted ``pitch_deg`` in the sagittal plane, and
    posterior (paraspinal) muscles as bright as CSF; a ``randomised`` draw otherwise."""
    from sct_lesion_classify.phantom import dataset, style
    from sct_lesion_classify.phantom.subject import generate_subject

    for index in range(n):
        subject_seed = dataset.subject_seed(seed, index)
        diagnosis = dataset.subject_diagnosis(seed, index)
        params = style.draw_style(np.random.default_rng(subject_seed), "randomised")
        t2 = dict(params.contrast.t2)
        t2["muscle"] = max(t2.values())
        params = dataclasses.replace(
            params, posture=dataclasses.replace(params.posture, pitch_deg=pitch_deg),
            contrast=dataclasses.replace(params.contrast, t2=tuple(t2.items())))
        subject = generate_subject(subject_seed, diagnosis, participant_id=dataset.participant_id(index, n),
                                   style="randomised", style_params=params)
        dataset.write_subject(out, subject)
        print(subject.participant_id, diagnosis, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trust_levels", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("-o", type=Path, required=True)
    run.add_argument("--set", action="append", required=True, metavar="NAME=BIDS")
    run.add_argument("--threads", type=int, default=None)
    table = commands.add_parser("table")
    table.add_argument("out", type=Path)
    limits = commands.add_parser("limits")
    limits.add_argument("out", type=Path)
    limits.add_argument("--sets", nargs="+", required=True)
    tilted = commands.add_parser("tilted")
    tilted.add_argument("-o", type=Path, required=True)
    tilted.add_argument("-n", type=int, default=4)
    tilted.add_argument("--seed", type=int, default=5005)
    args = parser.parse_args(argv)
    if args.command == "run":
        run_sets({name: Path(root) for name, root in (s.split("=", 1) for s in args.set)}, args.o, args.threads)
    elif args.command == "table":
        print(tables(args.out))
    elif args.command == "limits":
        print(selection_limits(args.out, args.sets))
    else:
        write_tilted(args.o, args.n, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
