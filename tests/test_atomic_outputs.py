"""Atomic outputs (issue 8): runs killed with SIGKILL leave each output absent or complete.

Children are real processes running the commands' ``main`` (forked from a forkserver that has
imported the package, so each run costs a fraction of a second instead of an interpreter start):

- killed just before each rename that publishes an output (the k-th ``os.replace`` of a full
  run): exactly the k - 1 outputs published before exist, and each is complete and valid;
- killed at random times (fixed seed) during a run: every output that exists is complete and
  valid;
- four processes (``python -c``, as a shell pipeline would start them) writing into the same
  output and QC folder at once: every output valid and the QC index lists every entry.

What a SIGKILL can leave is a hidden temporary file (``.<output name>.<random>.tmp...``) beside
the outputs, never a partial file under an output's name.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from reliability_data import SHAPE, custom_args, run_in_child, write_packages, write_subject
from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.lesion.analysis_table import read_lesion_table
from sct_lesion_classify.qc.report import read_index

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return write_packages(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["reliability_data", "sct_lesion_classify.cli.deepseg_imlesion",
                                "sct_lesion_classify.cli.classify_lesion",
                                "sct_lesion_classify.pipeline.classification", "sct_lesion_classify.qc"])
    return ctx


def _argv(command: str, folder: Path, packages, subject: dict[str, Path]) -> list[str]:
    qc = folder / "qc"
    if command == "deepseg_imlesion":
        return (["-i", str(subject["t2w"]), "-save-cord", "1", "-qc", str(qc), "-v", "0"]
                + custom_args(packages["lesion"], packages["cord"]))
    return (["-i", str(subject["t2w"]), "-lesion", str(subject["lesion"]), "-s", str(subject["cord"]),
             "-qc", str(qc), "-v", "0"] + custom_args(*packages["classifiers"]))


def _run(context, command, argv, *, log=None, kill_before=None, kill_after_s=None) -> int:
    process = context.Process(target=run_in_child, args=(command, argv, log, kill_before))
    process.start()
    if kill_after_s is not None:
        process.join(kill_after_s)
        if process.exitcode is None:
            process.kill()  # SIGKILL
    process.join(120)
    assert process.exitcode is not None, "child still running after 120 s"
    return process.exitcode


def _check_valid(path: Path, subject_shape=None) -> None:
    """``path`` is a complete, valid output of its kind."""
    name = path.name
    if name.endswith(".nii.gz"):
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)  # reads (and CRC-checks) the whole stream
        assert data.shape == (subject_shape or SHAPE), path
    elif name == "index.json":
        entries = read_index(path.parent)
        for entry in entries:
            for _, relative in entry.pictures:
                _check_valid(path.parent / relative)
    elif name.endswith("_diagnosis.json"):
        assert validation_errors(json.loads(path.read_text())) == [], path
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".html"):
        assert path.read_text().rstrip().endswith("</html>"), path
    elif name.endswith("_lesion_seg_analysis.csv"):
        read_lesion_table(path)  # a whole table: its header, and every row with every cell
        assert path.read_text().endswith("\n"), path
    elif name.endswith(".png"):
        payload = path.read_bytes()
        assert payload.startswith(PNG_SIGNATURE) and payload.endswith(PNG_END), path
    else:
        raise AssertionError(f"unexpected output {path}")


def _outputs(folder: Path, inputs: set[Path]) -> list[Path]:
    """Every non-hidden file under ``folder`` that is not an input."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p not in inputs)


def _check_folder(folder: Path, inputs: dict[str, Path], before: dict[Path, bytes]) -> list[Path]:
    for path, payload in before.items():
        assert path.read_bytes() == payload, f"input {path} changed"
    outputs = _outputs(folder, set(inputs.values()))
    for path in outputs:
        _check_valid(path)
    leftovers = [p for p in folder.rglob(".*") if p.is_file() and p.name != ".qc_index.lock"]
    assert all(".tmp" in p.name for p in leftovers), leftovers
    return outputs


@pytest.mark.parametrize("command", ["deepseg_imlesion", "classify_lesion"])
def test_kill_before_each_rename(tmp_path, packages, context, command):
    # A full run, logging the outputs in the order they are published.
    full = tmp_path / "full"
    subject = write_subject(full)
    log = tmp_path / "replaces.log"
    assert _run(context, command, _argv(command, full, packages, subject), log=str(log)) == 0
    published = [Path(line) for line in log.read_text().splitlines()]
    assert len(published) >= 4  # mask/JSON, PNGs, QC index and page
    assert sorted(published) == _check_folder(full, subject, {})

    for k in range(1, len(published) + 1):
        folder = tmp_path / f"kill{k}"
        subject = write_subject(folder)
        before = {p: p.read_bytes() for p in subject.values()}
        assert _run(context, command, _argv(command, folder, packages, subject), kill_before=k) == -9
        outputs = _check_folder(folder, subject, before)
        expected = sorted(folder / p.relative_to(full) for p in published[: k - 1])
        # QC entry folders are named by date and a random id: compare their kinds, not names
        assert [p.name for p in outputs if "qc" not in p.parts] == \
            [p.name for p in expected if "qc" not in p.parts]
        assert len(outputs) == len(expected)


@pytest.mark.parametrize("command", ["deepseg_imlesion", "classify_lesion"])
def test_kill_at_random_times(tmp_path, packages, context, command):
    probe = tmp_path / "probe"
    subject = write_subject(probe)
    start = time.perf_counter()
    assert _run(context, command, _argv(command, probe, packages, subject)) == 0
    duration = time.perf_counter() - start  # schedules the kills; nothing is asserted on it
    rng = random.Random(8)
    for attempt in range(6):
        folder = tmp_path / f"run{attempt}"
        subject = write_subject(folder)
        before = {p: p.read_bytes() for p in subject.values()}
        code = _run(context, command, _argv(command, folder, packages, subject),
                    kill_after_s=rng.uniform(0.05, 1.1) * duration)
        assert code in (0, -9)
        outputs = _check_folder(folder, subject, before)
        if code == 0:
            assert outputs, "a finished run wrote nothing"


def test_four_processes_share_the_output_and_qc_folder(tmp_path, packages):
    """Four ``python -c`` processes segment (then classify) four subjects in one folder at once."""
    folder = tmp_path / "shared"
    subjects = []
    for k in range(4):
        paths = write_subject(tmp_path / f"s{k}", seed=k)
        moved = {}
        for key, path in paths.items():
            moved[key] = folder / path.name.replace("sub-01", f"sub-0{k + 1}")
            moved[key].parent.mkdir(exist_ok=True)
            shutil.move(str(path), moved[key])
        subjects.append(moved)
    before = {p: p.read_bytes() for s in subjects for p in s.values()}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for command in ("deepseg_imlesion", "classify_lesion"):
        code = (f"import sys; from sct_lesion_classify.cli.{command} import main; "
                "sys.exit(main(sys.argv[1:]))")
        processes = [subprocess.Popen([sys.executable, "-c", code, *_argv(command, folder, packages, s)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for s in subjects]
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
    inputs = {str(p): p for p in before}
    outputs = _check_folder(folder, inputs, before)
    names = {p.name for p in outputs}
    for k in range(1, 5):
        assert {f"sub-0{k}_T2w_lesion_seg.nii.gz", f"sub-0{k}_T2w_lesion_seg.json",
                f"sub-0{k}_T2w_diagnosis.json"} <= names
    entries = read_index(folder / "qc")
    assert len(entries) == 8
    assert sorted(e.command for e in entries) == ["sct_classify_lesion"] * 4 + ["sct_deepseg_imlesion"] * 4
    assert not [p for p in folder.rglob(".*") if p.name != ".qc_index.lock"]
