"""``examples/sct_run_batch_subject.sh`` run the way SCT's ``sct_run_batch`` runs it.

SCT is not installed here, so :func:`sct_run_batch` below does what ``sct_run_batch`` does for a
script (SCT 7, ``spinalcordtoolbox/scripts/sct_run_batch.py``, stored copy at commit
00df6adcbe4db561c395d42c80d3433350b26d80):

- ``main``: ``PATH_RESULTS``, ``PATH_DATA_PROCESSED``, ``PATH_LOG`` and ``PATH_QC`` are
  ``<path-output>/{results,data_processed,log,qc}`` (created beforehand), ``PATH_SEGMANUAL`` is
  ``abspath(-path-segmanual)`` whose default is ``"."``, ``PATH_DATA`` is ``abspath(-path-data)``;
  the script is copied into ``<path-output>`` and made executable.
- ``_parse_dataset_directory``: the subject folders are the folders of ``PATH_DATA`` starting with
  ``-subject-prefix`` (default ``sub-``); a subject with ``ses-*`` folders gives one entry per
  session, ``sub-XX/ses-YY``, unless ``-ignore-ses``.
- ``_filter_directories``: ``-include`` / ``-exclude`` are regexes searched in that entry;
  ``-include-list`` / ``-exclude-list`` match the whole entry or any of its parts (``sub-01``,
  ``ses-02``); inclusions first. The filtering is sct_run_batch's own: nothing about it reaches
  the script (no INCLUDE/EXCLUDE variable).
- ``run_single``: the environment is a copy of ``os.environ`` updated with ``PATH_SEGMANUAL``,
  ``PATH_DATA``, ``PATH_DATA_PROCESSED``, ``PATH_RESULTS``, ``PATH_LOG``, ``PATH_QC``,
  ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` and ``SCT_PROGRESS_BAR=off`` (plus ``SCT_DIR`` when
  unset); the command is ``[script, subject_dir] + script_args.split(' ')`` (so an empty
  ``-script-args`` still passes one empty argument); stdout and stderr go to
  ``<PATH_LOG>/<script name without .sh>_<sub>[_<ses>].log``, renamed ``err.<...>.log`` when the
  script exits non-zero.

The dataset is a phantom (``phantom.dataset.write_dataset``: four small subjects) rearranged as
two subjects with two sessions each, with manual masks under several of SCT's names, and a third
subject whose image is not a NIfTI file. The model packages are tiny ONNX graphs
(``reliability_data.write_packages``), passed through the script's ``CUSTOM_MODELS``: these tests
check the script's mechanics, not accuracy. The console scripts come from the environment running the tests
(``shutil.which``) or, when the package is not installed, from small wrappers around
``sys.executable``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import sct_lesion_classify
from sct_lesion_classify.phantom.dataset import write_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "sct_run_batch_subject.sh"
PACKAGE_ROOT = Path(sct_lesion_classify.__file__).resolve().parents[1]
SHAPE = (7, 64, 96)  # canonical RL slices, AP, SI
SESSIONS = ("sub-01/ses-01", "sub-01/ses-02", "sub-02/ses-01", "sub-02/ses-02")
BROKEN = "sub-03/ses-01"  # its T2w is not a NIfTI file
#: The console scripts the example calls, and the function each one runs.
CONSOLE_SCRIPTS = {"sct_classify_lesion": "sct_lesion_classify.cli.classify_lesion:console_entry"}

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


# ----------------------------------------------------------------------------- the runner
@dataclass(frozen=True)
class BatchRun:
    """What one :func:`sct_run_batch` call left: return code of each subject folder, the paths."""

    output: Path
    returncodes: dict[str, int]

    @property
    def processed(self) -> Path:
        return self.output / "data_processed"

    @property
    def results(self) -> Path:
        return self.output / "results"

    def log(self, subject_dir: str) -> str:
        """The log of one subject folder (``err.`` prefixed when it failed, as sct_run_batch does)."""
        name = f"{SCRIPT.stem}_{subject_dir.replace('/', '_')}.log"
        failed = self.returncodes[subject_dir] != 0
        return (self.output / "log" / (f"err.{name}" if failed else name)).read_text()


def subject_folders(path_data: Path, prefix: str = "sub-", ignore_ses: bool = False) -> list[str]:
    """sct_run_batch's ``_parse_dataset_directory``: ``sub-XX`` or one ``sub-XX/ses-YY`` per session."""
    folders = []
    for subject in sorted(d.name for d in os.scandir(path_data) if d.name.startswith(prefix) and d.is_dir()):
        sessions = sorted(d.name for d in os.scandir(path_data / subject)
                          if d.name.startswith("ses-") and d.is_dir())
        if sessions and not ignore_ses:
            folders += [os.path.join(subject, session) for session in sessions]
        else:
            folders.append(subject)
    return folders


def filter_folders(folders: list[str], include: str | None = None, include_list: list[str] | None = None,
                   exclude: str | None = None, exclude_list: list[str] | None = None) -> list[str]:
    """sct_run_batch's ``_filter_directories`` (regex search, or a list of entries or their parts)."""
    if include is not None:
        folders = [f for f in folders if re.search(include, f)]
    elif include_list is not None:
        folders = [f for f in folders if f in include_list
                   or any(part in include_list for part in pathlib.Path(f).parts)]
    if exclude is not None:
        folders = [f for f in folders if not re.search(exclude, f)]
    elif exclude_list is not None:
        folders = [f for f in folders if f not in exclude_list
                   and all(part not in exclude_list for part in pathlib.Path(f).parts)]
    return folders


def sct_run_batch(script: Path, path_data: Path, path_output: Path, *, path_segmanual: str = ".",
                  script_args: str = "", include: str | None = None, include_list: list[str] | None = None,
                  exclude: str | None = None, exclude_list: list[str] | None = None,
                  ignore_ses: bool = False, itk_threads: int = 1,
                  environment: dict[str, str] | None = None) -> BatchRun:
    """Run ``script`` once per subject folder as ``sct_run_batch`` does (one job; module docstring).

    ``environment`` stands for the user's shell environment (the variables sct_run_batch inherits).
    """
    path_output = Path(os.path.abspath(path_output))
    folders = {name: path_output / name for name in ("results", "data_processed", "log", "qc")}
    for folder in (path_output, *folders.values()):
        folder.mkdir(parents=True, exist_ok=True)
    script_copy = Path(shutil.copy(script, path_output))
    script_copy.chmod(script_copy.stat().st_mode | stat.S_IEXEC)
    path_data = Path(os.path.abspath(os.path.expanduser(path_data)))
    subject_dirs = filter_folders(subject_folders(path_data, ignore_ses=ignore_ses), include=include,
                                  include_list=include_list, exclude=exclude, exclude_list=exclude_list)
    script_base = re.sub(r"\.sh$", "", script_copy.name)
    returncodes = {}
    for subject_dir in subject_dirs:
        subject_session = subject_dir.replace(os.path.sep, "_")
        log_file = folders["log"] / f"{script_base}_{subject_session}.log"
        env = dict(environment if environment is not None else os.environ)
        env.update({
            "PATH_SEGMANUAL": os.path.abspath(os.path.expanduser(path_segmanual)),
            "PATH_DATA": str(path_data),
            "PATH_DATA_PROCESSED": str(folders["data_processed"]),
            "PATH_RESULTS": str(folders["results"]),
            "PATH_LOG": str(folders["log"]),
            "PATH_QC": str(folders["qc"]),
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(itk_threads),
            "SCT_PROGRESS_BAR": "off",
        })
        env.setdefault("SCT_DIR", str(path_output / "no_sct"))
        with open(log_file, "w") as log:
            result = subprocess.run([str(script_copy), subject_dir] + script_args.split(" "), env=env,
                                    stdout=log, stderr=subprocess.STDOUT, timeout=300)
        if result.returncode != 0:
            log_file.rename(log_file.with_name(f"err.{log_file.name}"))
        returncodes[subject_dir] = result.returncode
    return BatchRun(path_output, returncodes)


def console_scripts_environment(bin_dir: Path) -> dict[str, str]:
    """``os.environ`` with the package's console scripts on PATH and the tested package importable.

    A console script installed beside ``sys.executable`` or on PATH is used as it is; otherwise a
    wrapper in ``bin_dir`` runs its entry point with ``sys.executable``. PYTHONPATH starts with the
    folder holding the package these tests import, so every script runs that same code.
    """
    env = dict(os.environ)
    search = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in CONSOLE_SCRIPTS.items():
        if shutil.which(name, path=search) is not None:
            continue
        module, function = target.split(":")
        code = f"import sys; sys.argv[0] = {name!r}; from {module} import {function}; {function}()"
        wrapper = bin_dir / name
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} \"$@\"\n")
        wrapper.chmod(0o755)
    env["PATH"] = os.pathsep.join([str(bin_dir), search])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


# ----------------------------------------------------------------------------- the dataset
def tiny_models(root: Path) -> str:
    """CUSTOM_MODELS: the tiny packages of the reliability tests (cord, lesion, three classifiers)."""
    pytest.importorskip("onnx")
    from reliability_data import write_packages

    packages = write_packages(root)
    return " ".join(str(folder) for folder in (packages["cord"], packages["lesion"], *packages["classifiers"]))


def file_stem(subject_dir: str) -> str:
    """BIDS name of the T2w image of a subject folder: ``sub-01/ses-01`` -> ``sub-01_ses-01_T2w``."""
    return subject_dir.replace("/", "_") + "_T2w"


def session_dataset(root: Path) -> tuple[Path, Path]:
    """A BIDS dataset with sessions, and a PATH_SEGMANUAL tree; return ``(bids, segmanual)``.

    Manual masks (the phantom's ground truth) under the names SCT's scripts look for:

    - sub-01/ses-01: lesion ``_label-lesion_seg`` (with a sidecar) and cord ``_label-SC_seg``
      in derivatives/labels;
    - sub-01/ses-02: cord only, ``_seg-manual`` in derivatives/labels;
    - sub-02/ses-01: lesion ``_lesion-manual`` in the PATH_SEGMANUAL tree only;
    - sub-02/ses-02: none.
    """
    phantom = root / "phantom"
    write_dataset(phantom, len(SESSIONS), seed=23, shape=SHAPE)
    bids, segmanual = root / "bids", root / "segmanual"
    bids.mkdir()
    shutil.copy(phantom / "dataset_description.json", bids)
    labels = bids / "derivatives" / "labels"
    labels.mkdir(parents=True)
    shutil.copy(phantom / "derivatives" / "labels" / "dataset_description.json", labels)
    for k, subject_dir in enumerate(SESSIONS):
        source = f"sub-{k + 1:03d}"
        stem = file_stem(subject_dir)
        anat = bids / subject_dir / "anat"
        anat.mkdir(parents=True)
        shutil.copy(phantom / source / "anat" / f"{source}_T2w.nii.gz", anat / f"{stem}.nii.gz")
        truth = phantom / "derivatives" / "labels" / source / "anat"
        lesion, cord = truth / f"{source}_T2w_lesion-manual.nii.gz", truth / f"{source}_T2w_seg-manual.nii.gz"
        manual = labels / subject_dir / "anat"
        if subject_dir == "sub-01/ses-01":
            manual.mkdir(parents=True)
            shutil.copy(lesion, manual / f"{stem}_label-lesion_seg.nii.gz")
            (manual / f"{stem}_label-lesion_seg.json").write_text(
                json.dumps({"Author": "Rater One", "Date": "2024-01-01"}) + "\n")
            shutil.copy(cord, manual / f"{stem}_label-SC_seg.nii.gz")
        elif subject_dir == "sub-01/ses-02":
            manual.mkdir(parents=True)
            shutil.copy(cord, manual / f"{stem}_seg-manual.nii.gz")
        elif subject_dir == "sub-02/ses-01":
            (segmanual / subject_dir / "anat").mkdir(parents=True)
            shutil.copy(lesion, segmanual / subject_dir / "anat" / f"{stem}_lesion-manual.nii.gz")
    broken = bids / BROKEN / "anat"
    broken.mkdir(parents=True)
    (broken / f"{file_stem(BROKEN)}.nii.gz").write_bytes(b"not a NIfTI file")
    (bids / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\nsub-03\n")
    return bids, segmanual


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("run_batch")
    bids, segmanual = session_dataset(root)
    env = console_scripts_environment(root / "bin")
    env["CUSTOM_MODELS"] = tiny_models(root / "models")
    return {"root": root, "bids": bids, "segmanual": segmanual, "env": env}


@pytest.fixture(scope="module")
def batch_run(dataset) -> BatchRun:
    """Every session of sub-01 and sub-02 (sub-03 excluded by -exclude-list, as a user would)."""
    return sct_run_batch(SCRIPT, dataset["bids"], dataset["root"] / "out", exclude_list=["sub-03"],
                         path_segmanual=str(dataset["segmanual"]), environment=dataset["env"])


def mask_data(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj) > 0


def diagnosis(run: BatchRun, subject_dir: str) -> dict:
    return json.loads((run.results / f"{file_stem(subject_dir)}_diagnosis.json").read_text())


# ----------------------------------------------------------------------------- tests
def test_every_session_runs_and_keeps_the_sub_ses_structure(batch_run, dataset):
    assert batch_run.returncodes == {s: 0 for s in SESSIONS}, \
        {s: batch_run.log(s) for s, code in batch_run.returncodes.items() if code}
    for subject_dir in SESSIONS:
        stem = file_stem(subject_dir)
        work = batch_run.processed / subject_dir / "anat"
        source = nib.load(str(dataset["bids"] / subject_dir / "anat" / f"{stem}.nii.gz"))
        for name in (f"{stem}.nii.gz", f"{stem}_lesion_seg.nii.gz", f"{stem}_diagnosis.json"):
            assert (work / name).is_file(), (subject_dir, name, sorted(p.name for p in work.iterdir()))
        mask = nib.load(str(work / f"{stem}_lesion_seg.nii.gz"))
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine, atol=1e-5)
        # The diagnosis goes to PATH_RESULTS under its session-qualified name, as written.
        assert diagnosis(batch_run, subject_dir) == json.loads((work / f"{stem}_diagnosis.json").read_text())
        assert f"{subject_dir} done" in batch_run.log(subject_dir)
    # Nothing written into the dataset; the excluded subject was never run.
    assert not (dataset["bids"] / "derivatives" / "sct_lesion_classify").exists()
    assert not [path for s in SESSIONS for path in (dataset["bids"] / s / "anat").glob("*_lesion_seg*")]
    assert not (batch_run.processed / "sub-03").exists()
    assert not list((batch_run.output / "log").glob("*sub-03*"))
    assert list((batch_run.output / "qc").iterdir())


def test_manual_masks_are_used_when_present(batch_run, dataset):
    bids, segmanual = dataset["bids"], dataset["segmanual"]
    expected_lesion = {  # the manual lesion each session should have used (None: segmented)
        "sub-01/ses-01": bids / "derivatives/labels/sub-01/ses-01/anat/sub-01_ses-01_T2w_label-lesion_seg.nii.gz",
        "sub-01/ses-02": None,
        "sub-02/ses-01": segmanual / "sub-02/ses-01/anat/sub-02_ses-01_T2w_lesion-manual.nii.gz",
        "sub-02/ses-02": None,
    }
    expected_cord = {"sub-01/ses-01": "sub-01_ses-01_T2w_label-SC_seg.nii.gz",
                     "sub-01/ses-02": "sub-01_ses-02_T2w_seg-manual.nii.gz"}
    for subject_dir, manual in expected_lesion.items():
        stem = file_stem(subject_dir)
        work = batch_run.processed / subject_dir / "anat"
        document = diagnosis(batch_run, subject_dir)
        used = work / f"{stem}_lesion_seg.nii.gz"
        if manual is None:
            assert document["lesion_mask"]["source"] == "automatic", subject_dir
            assert "GeneratedBy" in json.loads((work / f"{stem}_lesion_seg.json").read_text())
        else:
            assert document["lesion_mask"]["source"] == "user", subject_dir
            assert document["lesion_mask"]["path"].endswith(f"{stem}_lesion_seg.nii.gz")
            np.testing.assert_array_equal(mask_data(used), mask_data(manual))
            assert mask_data(used).any()
            assert "Found manual lesion mask" in batch_run.log(subject_dir)
        cord = expected_cord.get(subject_dir)
        if cord is None:  # localized automatically, or no cord needed (a -lesion mask, no -s)
            assert document["cord_mask"] is None or document["cord_mask"]["source"] == "automatic", subject_dir
        else:
            assert document["cord_mask"]["source"] == "user", subject_dir
            assert document["cord_mask"]["path"].endswith(cord)
            assert (work / cord).is_file()
    # The manual mask's sidecar travels with it.
    sidecar = batch_run.processed / "sub-01/ses-01/anat/sub-01_ses-01_T2w_lesion_seg.json"
    assert json.loads(sidecar.read_text())["Author"] == "Rater One"


def test_include_exclude_by_session_and_a_failing_subject(dataset, tmp_path):
    """-include regex then -exclude-list by session: only sub-02/ses-01 and the broken sub-03 run;
    USE_MANUAL_LESION=0 makes sub-02/ses-01 segment although PATH_SEGMANUAL holds its mask."""
    env = dict(dataset["env"], USE_MANUAL_LESION="0")
    run = sct_run_batch(SCRIPT, dataset["bids"], tmp_path / "out", include=r"sub-0[23]",
                        exclude_list=["ses-02"], path_segmanual=str(dataset["segmanual"]), environment=env)
    assert set(run.returncodes) == {"sub-02/ses-01", BROKEN}
    assert run.returncodes["sub-02/ses-01"] == 0, run.log("sub-02/ses-01")
    assert diagnosis(run, "sub-02/ses-01")["lesion_mask"]["source"] == "automatic"
    assert run.returncodes[BROKEN] != 0
    log = run.log(BROKEN)  # renamed err.<script>_sub-03_ses-01.log
    assert "sct_classify_lesion: error:" in log and file_stem(BROKEN) in log
    assert "sub-03 done" not in log
    assert not (run.results / f"{file_stem(BROKEN)}_diagnosis.json").exists()
    assert not (run.processed / "sub-01").exists() and not (run.processed / "sub-02" / "ses-02").exists()


def test_script_arguments_reach_the_command(dataset, tmp_path):
    """-script-args are passed on to sct_classify_lesion: an unknown option is its usage error (2)."""
    run = sct_run_batch(SCRIPT, dataset["bids"], tmp_path / "out", include_list=["sub-01/ses-01"],
                        script_args="-no-such-option 1", environment=dataset["env"])
    assert run.returncodes == {"sub-01/ses-01": 2}
    assert "usage: sct_classify_lesion" in run.log("sub-01/ses-01")
    assert "-no-such-option" in run.log("sub-01/ses-01")


def test_required_manual_mask_missing_fails(dataset, tmp_path):
    env = dict(dataset["env"], USE_MANUAL_LESION="1")
    run = sct_run_batch(SCRIPT, dataset["bids"], tmp_path / "out", include_list=["sub-02/ses-02"],
                        environment=env)
    assert run.returncodes == {"sub-02/ses-02": 1}
    assert "USE_MANUAL_LESION=1 but no manual lesion mask of sub-02_ses-02_T2w" in run.log("sub-02/ses-02")


def test_subject_with_sessions_run_with_ignore_ses_says_why(dataset, tmp_path):
    run = sct_run_batch(SCRIPT, dataset["bids"], tmp_path / "out", include_list=["sub-01"],
                        ignore_ses=True, environment=dataset["env"])
    assert run.returncodes == {"sub-01": 1}
    assert "sub-01 has sessions" in run.log("sub-01")


@pytest.mark.parametrize("unset", ["PATH_DATA", "PATH_RESULTS", "PATH_QC"])
def test_missing_environment_variable_fails(dataset, tmp_path, unset):
    env = {k: v for k, v in dataset["env"].items() if not k.startswith("PATH_") or k == "PATH"}
    env.update(PATH_DATA=str(dataset["bids"]), PATH_RESULTS=str(tmp_path / "results"),
               PATH_QC=str(tmp_path / "qc"))
    del env[unset]
    result = subprocess.run(["bash", str(SCRIPT), "sub-01/ses-01"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"{unset} is not set" in result.stderr
    assert not (tmp_path / "results").exists()
