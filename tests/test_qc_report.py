"""QC report: entries, index, escaping, concurrent writers, and a real browser."""

from __future__ import annotations

import html
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.qc import (
    QcDraft,
    QcPicture,
    add_entry,
    classification_entry,
    default_dataset_subject,
    read_index,
    segmentation_entry,
)


def _volume(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, size=(9, 48, 80)).astype(np.float32)
    image[:, 18:30, :] += 150                       # a bright "cord" along S-I
    lesion = np.zeros(image.shape, bool)
    lesion[3:6, 20:28, 30:45] = True
    zz, yy = np.meshgrid(np.arange(80), np.arange(48))
    saliency = np.exp(-((yy - 24) ** 2 + (zz - 38) ** 2) / 60.0).astype(np.float32)
    saliency = np.broadcast_to(saliency, image.shape).copy()
    box = ((1, 8), (12, 36), (4, 76))
    return image, lesion, saliency, box


def _seg_draft(**kwargs):
    image, lesion, _, box = _volume()
    defaults = dict(command="sct_deepseg_imlesion",
                    input_path="/data/ds/sub-01/anat/sub-01_T2w.nii.gz", image=image,
                    zooms_mm=(3.0, 0.8, 0.6), lesion=lesion, cord_box=box)
    defaults.update(kwargs)
    return segmentation_entry(**defaults)


def _cls_draft(**kwargs):
    image, lesion, saliency, box = _volume()
    defaults = dict(command="sct_classify_lesion",
                    input_path="/data/ds/sub-01/anat/sub-01_T2w.nii.gz", image=image,
                    zooms_mm=(3.0, 0.8, 0.6), lesion=lesion, cord_box=box,
                    probabilities={"tumor_vs_demyelinating (P tumor)": 0.91,
                                   "astrocytoma_vs_ependymoma (P astrocytoma)": 0.3},
                    diagnosis="ependymoma", confidence="high",
                    class_probabilities={"ependymoma": 0.637, "astrocytoma": 0.273},
                    saliency={"tumor_vs_demyelinating": saliency},
                    warnings=["reference models trained on synthetic data"])
    defaults.update(kwargs)
    return classification_entry(**defaults)


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _leftover_temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.suffixes]


def test_entries_are_written_and_listed(tmp_path):
    qc = tmp_path / "qc"
    page = add_entry(qc, _seg_draft())
    assert page == qc / "index.html"
    add_entry(qc, _cls_draft())
    entries = read_index(qc)
    assert [e.command for e in entries] == ["sct_deepseg_imlesion", "sct_classify_lesion"]
    assert all((e.dataset, e.subject) == ("ds", "sub-01") for e in entries)
    seg, cls = entries
    assert [c for c, _ in seg.pictures][0].startswith("cord box")
    assert any(c.startswith("Grad-CAM saliency: tumor_vs_demyelinating") for c, _ in cls.pictures)
    details = dict(cls.details)
    assert details["diagnosis"] == "ependymoma (confidence: high)"
    assert details["model tumor_vs_demyelinating (P tumor)"] == "0.910"
    assert details["warning"] == "reference models trained on synthetic data"
    text = page.read_text(encoding="utf-8")
    for entry in entries:
        assert entry.entry_id in text
        for _, relative in entry.pictures:
            assert relative.startswith("ds/sub-01/" + entry.command + "/" + entry.entry_id + "/")
            assert _is_png(qc / relative)
            assert f'src="{relative}"' in text
    assert "http://" not in text and "https://" not in text          # self-contained
    assert _leftover_temporaries(qc) == []


def test_empty_lesion_entry(tmp_path):
    image, _, _, box = _volume()
    draft = _cls_draft(lesion=np.zeros(image.shape, bool), diagnosis=None, confidence=None,
                       class_probabilities=None, probabilities={}, saliency=None)
    add_entry(tmp_path, draft)
    details = dict(read_index(tmp_path)[0].details)
    assert details["diagnosis"] == "none"
    assert details["lesion"] == "none found (empty mask)"


def test_html_special_characters_are_escaped(tmp_path):
    nasty = '<script>alert("x")</script> & <b>'
    draft = QcDraft(command="cmd<&>", input_path=f"/data/{nasty}/t2.nii.gz",
                    pictures=(QcPicture(nasty, "a<b>", np.zeros((4, 4, 3), np.uint8)),),
                    details=((nasty, nasty),), dataset=nasty, subject="sub-<1>")
    add_entry(tmp_path, draft)
    text = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in text and "<b>" not in text and "cmd<&>" not in text
    assert html.escape(nasty, quote=True) in text
    entry = read_index(tmp_path)[0]
    assert entry.dataset == nasty and entry.subject == "sub-<1>"      # the index keeps the text
    relative = entry.pictures[0][1]
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", relative)                 # folder names are safe
    assert (tmp_path / relative).is_file()
    assert text.count("<script>") == 1                                 # only the page's own


def test_default_dataset_and_subject():
    assert default_dataset_subject("/d/mydata/sub-07/ses-2/anat/x.nii.gz") == ("mydata", "sub-07")
    assert default_dataset_subject("/d/study/patient3/t2.nii.gz") == ("study", "patient3")


def test_invalid_index_is_reported_and_kept(tmp_path):
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ProcessingError, match="index.json"):
        add_entry(tmp_path, _seg_draft())
    assert (tmp_path / "index.json").read_text() == "{not json"


def test_foreign_index_html_is_not_overwritten(tmp_path):
    foreign = "<html><body>SCT QC</body></html>"
    (tmp_path / "index.html").write_text(foreign)
    page = add_entry(tmp_path, _seg_draft())
    assert page.name == "index_sct_lesion_classify.html"
    assert (tmp_path / "index.html").read_text() == foreign
    assert add_entry(tmp_path, _seg_draft()) == page


def test_four_processes_append_without_loss(tmp_path):
    qc = tmp_path / "qc"
    drafts = []
    for process in range(4):
        for k in range(3):
            drafts.append(QcDraft(
                command="sct_classify_lesion", input_path=f"/d/ds/sub-{process}{k}/anat/t2.nii.gz",
                pictures=(QcPicture("p", "p", np.full((8, 8, 3), 40 * k, np.uint8)),),
                details=(("worker", str(process)),)))
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pages = pool.starmap(add_entry, [(qc, draft) for draft in drafts])
    assert set(pages) == {qc / "index.html"}
    document = json.loads((qc / "index.json").read_text())
    subjects = sorted(e["subject"] for e in document["entries"])
    assert subjects == sorted(f"sub-{p}{k}" for p in range(4) for k in range(3))
    text = (qc / "index.html").read_text(encoding="utf-8")
    for entry in document["entries"]:
        assert entry["entry_id"] in text
        assert (qc / entry["pictures"][0][1]).is_file()
    assert _leftover_temporaries(qc) == []
    assert sorted(p.name for p in qc.iterdir() if p.is_file()) == \
        [".qc_index.lock", "index.html", "index.json"]


# --------------------------------------------------------------------------------------------
# Real browser

_CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(executable: str, *arguments: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="qc-chromium-")
    try:
        return subprocess.run([executable, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               "--virtual-time-budget=10000", *arguments],
                              capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_page_renders_in_headless_chromium(tmp_path):
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    qc = tmp_path / "qc <report>"          # a folder name that needs URL quoting
    add_entry(qc, _seg_draft())
    add_entry(qc, _cls_draft(subject="sub-<02>"))
    url = (qc / "index.html").resolve().as_uri()

    dom = _run_chromium(executable, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout)
    assert root, dom.stdout[:500]
    attributes = dict(re.findall(r'(data-images-[a-z]+)="([^"]*)"', root.group(0)))
    entries = read_index(qc)
    records = sum(len(e.sct_records) for e in entries)
    assert records == 3                    # lesion; lesion and Grad-CAM (SCT-format records)
    expected = sum(len(e.pictures) for e in entries) + 2 * records   # + background and overlay
    assert attributes == {"data-images-total": str(expected), "data-images-broken": "0",
                          "data-images-checked": "yes"}

    screenshot = Path(os.environ.get("QC_SCREENSHOT_DIR", tmp_path)) / "qc_index_screenshot.png"
    shot = _run_chromium(executable, "--window-size=1400,1800", f"--screenshot={screenshot}", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_browser_check_reports_missing_pictures(tmp_path):
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    add_entry(tmp_path, _seg_draft())
    entry = read_index(tmp_path)[0]
    (tmp_path / entry.pictures[0][1]).unlink()
    dom = _run_chromium(executable, "--dump-dom", (tmp_path / "index.html").as_uri())
    assert 'data-images-broken="1"' in dom.stdout
    assert "could not be loaded" in dom.stdout
