"""``sct_lesion_classify batch``: rows and statuses, resume, Dask vs local, a run killed mid-way.

The cohorts are small phantoms (64x96 in-plane, 7 sagittal slices) and the model packages tiny
real ONNX graphs (modelpkg.testing), so these tests check the runner's mechanics, not accuracy.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_lesion_classify import PROJECT_URL
from sct_lesion_classify.batch.cohort import check_complete, select_subjects, subject_outputs
from sct_lesion_classify.batch.table import (
    COLUMNS,
    RUNTIME_COLUMNS,
    failed_outcome,
    format_table,
    read_table,
)
from sct_lesion_classify.classify.diagnosis import CLASSES, ROLE_CLASSES
from sct_lesion_classify.classify.document import validation_errors
from sct_lesion_classify.cli.sct_lesion_classify import main as dispatch
from sct_lesion_classify.io.bids import discover_subjects
from sct_lesion_classify.modelpkg.testing import tiny_card, write_tiny_package
from sct_lesion_classify.phantom.dataset import write_dataset
from sct_lesion_classify.pipeline.models import ModelFingerprint
from sct_lesion_classify.qc.report import read_index
from sct_lesion_classify.runtime.session import usable_cores

REPO = Path(__file__).resolve().parents[1]
SHAPE = (7, 64, 96)  # canonical RL slices, AP, SI
DERIVATIVES = Path("derivatives") / "sct_lesion_classify"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    """-custom-model arguments of five tiny packages (cord, lesion, the three classifiers)."""
    root = tmp_path_factory.mktemp("models")
    folders = [write_tiny_package(root, "tiny_cord", "cord_localization", weight=4.0, bias=-2.0),
               write_tiny_package(root, "tiny_lesion", "lesion_segmentation", weight=4.0, bias=-10.0)]
    for k, (role, classes) in enumerate(ROLE_CLASSES.items()):
        card = tiny_card(role, "classification", spatial_size=(32, 32))
        output = dict(card["output"], classes=list(classes), positive_class=classes[k % 2])
        folders.append(write_tiny_package(root, role, "classification", spatial_size=(32, 32), weight=0.7,
                                          bias=-0.4 + 0.2 * k, card_overrides={"output": output}))
    return [arg for folder in folders for arg in ("-custom-model", str(folder))]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom") / "bids"
    write_dataset(root, 5, seed=11, shape=SHAPE)
    return root


@pytest.fixture()
def bids(tmp_path, phantom) -> Path:
    return Path(shutil.copytree(phantom, tmp_path / "bids"))


def batch(bids_root: Path, models: list[str], *extra: str) -> int:
    return dispatch(["batch", "--bids", str(bids_root), *models, *extra])


def table(bids_root: Path) -> dict[str, dict[str, str]]:
    return read_table(bids_root / DERIVATIVES / "diagnoses.csv")


def without_runtimes(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {pid: {k: v for k, v in row.items() if k not in RUNTIME_COLUMNS} for pid, row in rows.items()}


def t2w(bids_root: Path, pid: str) -> Path:
    return bids_root / pid / "anat" / f"{pid}_T2w.nii.gz"


def diagnosis_json(bids_root: Path, pid: str) -> Path:
    return bids_root / DERIVATIVES / pid / "anat" / f"{pid}_T2w_diagnosis.json"


def lesion_mask(bids_root: Path, pid: str) -> Path:
    return bids_root / DERIVATIVES / pid / "anat" / f"{pid}_T2w_lesion_seg.nii.gz"


def break_subjects(bids_root: Path) -> None:
    """sub-002: not a NIfTI file; sub-003: an empty (all-zero) image; sub-006: no T2w at all."""
    t2w(bids_root, "sub-002").write_bytes(b"this is not a NIfTI file")
    image = nib.load(str(t2w(bids_root, "sub-003")))
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.int16), image.affine, image.header),
             str(t2w(bids_root, "sub-003")))
    (bids_root / "sub-006" / "anat").mkdir(parents=True)


# ----------------------------------------------------------------------------- the command
def test_mixed_cohort_rows_statuses_and_outputs(bids, models, capsys):
    break_subjects(bids)
    assert batch(bids, models, "-j", "2", "--qc", str(bids.parent / "qc")) == 1
    err = capsys.readouterr().err
    assert "WARNING: sub-002 failed: InputError:" in err and "WARNING: sub-003 failed: InputError:" in err

    text = (bids / DERIVATIVES / "diagnoses.csv").read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    rows = table(bids)
    assert list(rows) == ["sub-001", "sub-002", "sub-003", "sub-004", "sub-005"]  # sorted; no sub-006
    assert {pid: row["status"] for pid, row in rows.items()} == {
        "sub-001": "ok", "sub-002": "failed", "sub-003": "failed", "sub-004": "ok", "sub-005": "ok"}
    assert "sub-002_T2w.nii.gz: T2w image is not a readable NIfTI file" in rows["sub-002"]["error"]
    assert "sub-003_T2w.nii.gz: T2w image is empty" in rows["sub-003"]["error"]
    expected_models = ("tiny_cord 1.0.0; tiny_lesion 1.0.0; tumor_vs_demyelinating 1.0.0; "
                       "astrocytoma_vs_ependymoma 1.0.0; ms_vs_nmosd 1.0.0")
    for pid, row in rows.items():
        assert row["models"] == expected_models
        if row["status"] == "failed":
            assert all(row[f"p_{c}"] == "" for c in CLASSES) and row["most_likely_class"] == ""
            assert row["diagnosis_json"] == "" and not diagnosis_json(bids, pid).exists()
            assert float(row["runtime_total_s"]) >= 0
            continue
        assert row["error"] == ""
        probabilities = {c: float(row[f"p_{c}"]) for c in CLASSES}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert row["most_likely_class"] == max(probabilities, key=probabilities.get)
        assert row["confidence"] in ("low", "high") and row["group"] in ("tumor", "demyelinating")
        assert int(row["lesion_count"]) >= 1 and float(row["lesion_volume_mm3"]) > 0
        assert all(float(row[c]) >= 0 for c in RUNTIME_COLUMNS)
        assert row["diagnosis_json"] == f"{DERIVATIVES.as_posix()}/{pid}/anat/{pid}_T2w_diagnosis.json"
        document = json.loads((bids / row["diagnosis_json"]).read_text())
        assert validation_errors(document) == []
        assert document["lesion_mask"] == {"path": str(lesion_mask(bids, pid)), "source": "automatic"}
        assert nib.load(str(bids / row["lesion_mask"])).shape == nib.load(str(t2w(bids, pid))).shape
        assert document["diagnosis"]["most_likely_class"] == row["most_likely_class"]

    description = json.loads((bids / DERIVATIVES / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "sct_lesion_classify"
    assert description["GeneratedBy"][0]["CodeURL"] == PROJECT_URL
    assert not list((bids / DERIVATIVES).glob(".diagnoses.csv.*"))  # no temporary file left
    # two workers added their QC entries to one report (segmentation and classification each)
    entries = read_index(bids.parent / "qc")
    assert sorted({(e.subject, e.dataset) for e in entries}) == [
        ("sub-001", "bids"), ("sub-004", "bids"), ("sub-005", "bids")]
    assert len(entries) == 6


def test_manual_lesion_masks_empty_and_missing(bids, models, capsys):
    labels = bids / "derivatives" / "labels"
    empty = labels / "sub-002" / "anat" / "sub-002_T2w_lesion-manual.nii.gz"
    image = nib.load(str(empty))
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine, image.header), str(empty))
    (labels / "sub-003" / "anat" / "sub-003_T2w_lesion-manual.nii.gz").unlink()
    assert batch(bids, models, "--use-manual-lesion", "--include", "sub-00[1-3]", "-v", "2") == 1
    out = capsys.readouterr().out
    assert "sub-001: " in out and "confidence" in out  # -v 2: one line per subject, with its log
    assert out.count("models loaded in process") == 1  # one worker: sessions built once for 3 subjects

    rows = table(bids)
    assert list(rows) == ["sub-001", "sub-002", "sub-003"]
    assert [rows[p]["status"] for p in rows] == ["ok", "no_lesion", "failed"]
    assert "manual lesion mask not found (--use-manual-lesion)" in rows["sub-003"]["error"]
    assert rows["sub-002"]["lesion_count"] == "0" and rows["sub-002"]["most_likely_class"] == ""
    assert rows["sub-001"]["lesion_mask"] == "derivatives/labels/sub-001/anat/sub-001_T2w_lesion-manual.nii.gz"
    assert rows["sub-001"]["models"] == ("tumor_vs_demyelinating 1.0.0; astrocytoma_vs_ependymoma 1.0.0; "
                                         "ms_vs_nmosd 1.0.0")
    assert json.loads(diagnosis_json(bids, "sub-001").read_text())["lesion_mask"]["source"] == "user"
    assert not lesion_mask(bids, "sub-001").exists()


def test_resume_skips_complete_subjects_and_redoes_truncated_ones(bids, models):
    assert batch(bids, models, "-j", "2", "-v", "0") == 0
    first = table(bids)
    stamps = {pid: diagnosis_json(bids, pid).stat().st_mtime_ns for pid in first}

    assert batch(bids, models, "-v", "0") == 0  # nothing to do
    assert {pid: diagnosis_json(bids, pid).stat().st_mtime_ns for pid in first} == stamps
    assert table(bids) == first  # rows rebuilt from the JSON files: identical, runtimes included

    mask = lesion_mask(bids, "sub-001")
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])  # truncated gzip
    document = diagnosis_json(bids, "sub-002")
    document.write_text(document.read_text()[:200])  # truncated JSON
    time.sleep(0.01)
    assert batch(bids, models, "-v", "0") == 0
    redone = {pid for pid in first if diagnosis_json(bids, pid).stat().st_mtime_ns != stamps[pid]}
    assert redone == {"sub-001", "sub-002"}
    assert without_runtimes(table(bids)) == without_runtimes(first)
    nib.load(str(mask)).get_fdata()  # whole again

    # another model package: nothing is complete for it (checked, not assumed)
    subject = discover_subjects(bids)[3]
    outputs = subject_outputs(bids / DERIVATIVES, subject)
    recorded = [ModelFingerprint(m["name"], m["version"], m["sha256"]) for m in
                json.loads(outputs.diagnosis_json.read_text())["provenance"]["models"]]
    document, reason = check_complete(subject, outputs, lesion_path=outputs.lesion_mask,
                                      lesion_source="automatic", models=recorded)
    assert document is not None and reason == ""
    other = recorded[:-1] + [ModelFingerprint("ms_vs_nmosd", "1.0.1", "0" * 64)]
    assert check_complete(subject, outputs, lesion_path=outputs.lesion_mask, lesion_source="automatic",
                          models=other) == (None, "the diagnosis was computed with other model packages")
    assert check_complete(subject, outputs, lesion_path=outputs.lesion_mask, lesion_source="user",
                          models=recorded)[0] is None

    # --overwrite redoes what is selected; rows of the others stay in the table
    stamps = {pid: diagnosis_json(bids, pid).stat().st_mtime_ns for pid in first}
    assert batch(bids, models, "--overwrite", "--include", "005", "-v", "0") == 0
    redone = {pid for pid in first if diagnosis_json(bids, pid).stat().st_mtime_ns != stamps[pid]}
    assert redone == {"sub-005"}
    assert without_runtimes(table(bids)) == without_runtimes(first)


def as_written_by_an_earlier_version(bids_root: Path, pid: str) -> Path:
    """Rename a subject's automatic mask and sidecar to the old ``_lesionseg`` names, and point its
    diagnosis JSON at the old mask, as earlier versions wrote them; the old mask's path."""
    mask = lesion_mask(bids_root, pid)
    old_mask = mask.with_name(f"{pid}_T2w_lesionseg.nii.gz")
    mask.rename(old_mask)
    mask.with_name(f"{pid}_T2w_lesion_seg.json").rename(mask.with_name(f"{pid}_T2w_lesionseg.json"))
    document_path = diagnosis_json(bids_root, pid)
    document = json.loads(document_path.read_text())
    document["lesion_mask"]["path"] = str(old_mask)
    document_path.write_text(json.dumps(document, indent=2))
    return old_mask


def test_resume_recognises_outputs_under_the_earlier_lesionseg_name(bids, models):
    assert batch(bids, models, "--include", "sub-00[12]", "-v", "0") == 0
    old_masks = {pid: as_written_by_an_earlier_version(bids, pid) for pid in ("sub-001", "sub-002")}
    stamps = {pid: diagnosis_json(bids, pid).stat().st_mtime_ns for pid in old_masks}
    time.sleep(0.01)

    assert batch(bids, models, "--include", "sub-00[12]", "-v", "0") == 0
    assert {pid: diagnosis_json(bids, pid).stat().st_mtime_ns for pid in old_masks} == stamps  # skipped
    rows = table(bids)
    for pid, old_mask in old_masks.items():
        assert rows[pid]["status"] == "ok"
        assert rows[pid]["lesion_mask"] == old_mask.relative_to(bids).as_posix()
        assert not lesion_mask(bids, pid).exists()  # nothing rewritten under the new name

    # the old outputs are checked like the new ones: a truncated old mask is redone, under the new name
    broken = old_masks["sub-002"]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    (bids / DERIVATIVES / "sub-001" / "anat" / "sub-001_T2w_lesionseg.json").unlink()  # no sidecar
    assert batch(bids, models, "--include", "sub-00[12]", "-v", "0") == 0
    for pid in old_masks:
        assert diagnosis_json(bids, pid).stat().st_mtime_ns != stamps[pid]
        assert lesion_mask(bids, pid).is_file()
        assert json.loads(diagnosis_json(bids, pid).read_text())["lesion_mask"]["path"] == str(lesion_mask(bids, pid))
    assert table(bids)["sub-002"]["lesion_mask"] == lesion_mask(bids, "sub-002").relative_to(bids).as_posix()


def test_dask_cluster_gives_the_same_table_as_local_processes(bids, models, capsys):
    distributed = pytest.importorskip("distributed")
    break_subjects(bids)
    assert batch(bids, models, "-j", "2", "-v", "0") == 1
    local = table(bids)
    capsys.readouterr()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        assert batch(bids, models, "--scheduler", cluster.scheduler_address, "--overwrite", "-v", "2") == 1
    out = capsys.readouterr().out
    remote = table(bids)
    assert without_runtimes(remote) == without_runtimes(local)
    assert [row["status"] for row in remote.values()] == ["ok", "failed", "failed", "ok", "ok"]
    ran_on = {int(line.split("[")[1].split(",")[0].rsplit(":", 1)[1])
              for line in out.splitlines() if line.startswith("sub-0")}
    assert ran_on and ran_on <= worker_pids and os.getpid() not in ran_on
    # each worker process built its sessions once, with its share of the host's cores
    threads = max(1, usable_cores() // 2)
    assert out.count(f"({threads} intra-op threads per session)") == len(ran_on)
    assert out.count("models loaded in process") == len(ran_on)


@pytest.mark.slow
def test_a_batch_killed_with_sigkill_leaves_a_whole_table(tmp_path, models):
    root = tmp_path / "bids"
    write_dataset(root, 12, seed=5, shape=SHAPE)
    table_path = root / DERIVATIVES / "diagnoses.csv"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "sct_lesion_classify.cli.sct_lesion_classify", "batch",
               "--bids", str(root), "-j", "1", "-v", "0", *models]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if table_path.is_file() and table_path.read_text().count("\n") >= 2:  # header + a row
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the command and its worker process
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()

    text = table_path.read_text()
    assert text.endswith("\n")
    rows = read_table(table_path)  # a complete header and whole rows, or it raises
    assert 1 <= len(rows) < 12
    assert all(row["status"] == "ok" for row in rows.values())
    finished = {pid: diagnosis_json(root, pid).stat().st_mtime_ns for pid in rows}
    # what a kill during an atomic write leaves behind is cleaned by the next run
    (root / DERIVATIVES / ".diagnoses.csv.k1ll3d.tmp").write_text("participant_id,sta")
    (root / DERIVATIVES / "sub-012" / "anat").mkdir(parents=True, exist_ok=True)
    (root / DERIVATIVES / "sub-012" / "anat" / ".sub-012_T2w_diagnosis.json.k1ll3d.tmp").write_text("{")

    assert dispatch(["batch", "--bids", str(root), "-v", "0", *models]) == 0  # resumes
    rows = read_table(table_path)
    assert len(rows) == 12 and {row["status"] for row in rows.values()} == {"ok"}
    assert {pid: diagnosis_json(root, pid).stat().st_mtime_ns for pid in finished} == finished
    assert not list((root / DERIVATIVES).rglob(".*.tmp*"))


def test_usage_errors_exit_2_and_write_nothing(tmp_path, models, bids, capsys):
    assert batch(tmp_path / "missing", models) == 2
    (tmp_path / "empty").mkdir()
    assert batch(tmp_path / "empty", models) == 2
    assert not (tmp_path / "empty" / "derivatives").exists()
    assert batch(bids, models, "--exclude", "sub-*") == 2
    assert batch(bids, models, "--use-manual-cord", "-cord-method", "sct") == 2
    assert batch(bids, models, "--scheduler", "localhost") == 2
    assert dispatch(["batch", "--bids", str(bids), "-j", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err.pop(-2) == "usage: sct_lesion_classify batch --bids <folder> [options]"  # -j 0: a parser error
    assert len(err) == 6 and all(line.startswith("sct_lesion_classify batch: error: ") for line in err)
    assert "not a BIDS dataset with T2w images" in err[1] and "no subject left" in err[2]
    assert not (bids / "derivatives" / "sct_lesion_classify").exists()


def test_help_is_light(capsys):
    assert dispatch(["batch", "-h"]) == 0
    assert "--scheduler" in capsys.readouterr().out
    code = ("import sys; from sct_lesion_classify.cli import batch; batch.get_parser().format_help(); "
            "print(sorted(m for m in ('numpy', 'dask', 'distributed', 'tqdm', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- library units
def test_include_exclude_patterns(phantom):
    subjects = discover_subjects(phantom)
    ids = lambda chosen: [s.participant_id for s in chosen]  # noqa: E731
    assert ids(select_subjects(subjects)) == ["sub-001", "sub-002", "sub-003", "sub-004", "sub-005"]
    assert ids(select_subjects(subjects, include=["sub-00[12]", "005"])) == ["sub-001", "sub-002", "sub-005"]
    assert ids(select_subjects(subjects, exclude=["*3", "sub-004"])) == ["sub-001", "sub-002", "sub-005"]
    # sct_run_batch's -include / -exclude: a regular expression searched in the folder name
    assert ids(select_subjects(subjects, include_regex="0[12]$")) == ["sub-001", "sub-002"]
    assert ids(select_subjects(subjects, exclude_regex="^sub-00[1-3]")) == ["sub-004", "sub-005"]
    assert ids(select_subjects(subjects, include=["sub-00[1-4]"], include_regex="[2-5]",
                               exclude_regex="3")) == ["sub-002", "sub-004"]


def test_batch_takes_sct_run_batch_spellings(phantom, tmp_path, capsys):
    from sct_lesion_classify.cli.batch import get_parser

    args = get_parser().parse_args(["-bids", "d", "-jobs", "3", "-include-list", "sub-01", "sub-02",
                                    "-exclude-list", "sub-02", "-include", "^sub-0", "-exclude", "9$"])
    assert (args.j, args.include, args.exclude) == (3, ["sub-01", "sub-02"], ["sub-02"])
    assert (args.include_regex, args.exclude_regex) == ("^sub-0", "9$")
    assert get_parser().parse_args(["-bids", "d", "--jobs", "2", "--include", "a"]).j == 2
    assert dispatch(["batch", "--bids", "d", "-include", "sub-(", "-v", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: sct_lesion_classify batch --bids <folder>")
    assert err[1].startswith("sct_lesion_classify batch: error: argument -include: invalid regular expression")
    # a regex that leaves no subject is a usage error naming it, before anything is written
    assert dispatch(["batch", "--bids", str(phantom), "-include", "^sub-9", "-o", str(tmp_path / "out")]) == 2
    assert "-include '^sub-9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_table_round_trip_and_one_line_errors(tmp_path):
    failed = failed_outcome("sub-02", "InputError: bad\nfile, with \"quotes\"", runtime_s=0.5,
                            models=["a 1.0.0"])
    assert failed.error == 'InputError: bad file, with "quotes"'
    text = format_table([failed.to_row(), {**failed.to_row(), "participant_id": "sub-01"}])
    assert list(csv.reader(io.StringIO(text)))[1][0] == "sub-01"  # sorted
    path = tmp_path / "diagnoses.csv"
    path.write_text(text)
    assert read_table(path)["sub-02"] == failed.to_row()
    path.write_text(text[:-10])  # a cut row
    with pytest.raises(ValueError, match="fields"):
        read_table(path)


def test_sct_run_batch_example_script(tmp_path, phantom, models):
    """examples/sct_run_batch_subject.sh as sct_run_batch calls it: SUBJECT as $1, PATH_* in the env."""
    bin_dir = Path(sys.executable).parent
    if shutil.which("sct_classify_lesion", path=str(bin_dir)) is None or shutil.which("bash") is None:
        pytest.skip("needs bash and the console scripts installed beside this Python")
    output = tmp_path / "out"
    env = dict(os.environ, PATH=os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               PATH_DATA=str(phantom), PATH_DATA_PROCESSED=str(output / "data_processed"),
               PATH_RESULTS=str(output / "results"), PATH_QC=str(output / "qc"), PATH_LOG=str(output / "log"),
               CUSTOM_MODELS=" ".join(models[1::2]), USE_MANUAL_LESION="0")  # segment, not the phantom's truth
    script = REPO / "examples" / "sct_run_batch_subject.sh"
    result = subprocess.run(["bash", str(script), "sub-002"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    document = json.loads((output / "results" / "sub-002_T2w_diagnosis.json").read_text())
    assert validation_errors(document) == [] and document["lesion_mask"]["source"] == "automatic"
    assert (output / "data_processed" / "sub-002" / "anat" / "sub-002_T2w_lesion_seg.nii.gz").is_file()
    assert (output / "qc" / "index.html").is_file()
    assert not (phantom / "sub-002" / "anat" / "sub-002_T2w_lesion_seg.nii.gz").exists()  # source untouched

    failed = subprocess.run(["bash", str(script), "sub-404"], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "sub-404_T2w.nii.gz not found" in failed.stderr


def test_j1_and_j2_give_identical_tables_and_byte_identical_masks(bids, models):
    """Determinism across worker counts: same probabilities and statuses, same mask bytes."""
    assert batch(bids, models, "-j", "1", "-v", "0") == 0
    first = table(bids)
    masks = {pid: lesion_mask(bids, pid).read_bytes() for pid in first}
    assert batch(bids, models, "-j", "2", "--overwrite", "-v", "0") == 0
    assert without_runtimes(table(bids)) == without_runtimes(first)
    assert {pid: lesion_mask(bids, pid).read_bytes() for pid in first} == masks
