"""QC entries recorded in SCT 7's QC format (``_json/qc_<timestamp>.json``), beside SCT's own.

The fixture folder is built from SCT 7's record format (``spinalcordtoolbox/reports/qc2.py``,
``create_qc_entry``): a record of ``sct_deepseg`` with its background and overlay pictures, the
``js/datasets.js`` that SCT's page reads, and an ``index.html`` marked as SCT's. SCT's real page
(a React bundle) is not available offline; the fixture's page is a stand-in that renders
``window.SCT_QC_DATASETS`` the way SCT's does (background picture, overlay picture on top).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import multiprocessing
import os
import re
import struct
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.qc import (
    SCT_RECORD_KEYS,
    PicturePair,
    QcDraft,
    QcPicture,
    SctRecord,
    add_entry,
    classification_entry,
    read_index,
    read_records,
    segmentation_entry,
)
from sct_lesion_classify.qc.mosaic import REGION_RGB
from sct_lesion_classify.qc.png import encode_png, write_png
from test_qc_report import _chromium, _run_chromium   # the same headless Chromium runner

INPUT = "/data/ds/sub-01/anat/sub-01_T2w.nii.gz"
RECORD_NAME = re.compile(r"qc_(\d{4}_\d{2}_\d{2}_\d{6}\.\d{6})\.json")


# --------------------------------------------------------------------------------------------
# Helpers


def decode_png(payload: bytes) -> np.ndarray:
    """Stdlib PNG decoder for 8-bit gray / RGB / RGBA with filter 0 (independent of qc.png)."""
    assert payload[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(payload):
        (length,) = struct.unpack(">I", payload[pos:pos + 4])
        kind, data = payload[pos + 4:pos + 8], payload[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", payload[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc
        chunks.append((kind, data))
        pos += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    raw = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * channels)
    assert np.all(rows[:, 0] == 0)
    return rows[:, 1:].reshape(height, width, channels)


def _volume():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, size=(9, 48, 80)).astype(np.float32)
    image[:, 18:30, :] += 150
    lesion = np.zeros(image.shape, bool)
    lesion[3:6, 20:28, 30:45] = True
    region = np.zeros(image.shape, bool)
    region[1:8, 12:36, 10:70] = True
    zz, yy = np.meshgrid(np.arange(80), np.arange(48))
    saliency = np.broadcast_to(np.exp(-((yy - 24) ** 2 + (zz - 38) ** 2) / 60.0),
                               image.shape).astype(np.float32)
    return image, lesion, region, saliency, ((1, 8), (12, 36), (4, 76))


def _seg_draft(**kwargs):
    image, lesion, region, _, box = _volume()
    arguments = dict(command="sct_deepseg_imlesion", input_path=INPUT, image=image,
                     zooms_mm=(3.0, 0.8, 0.6), lesion=lesion, cord_box=box,
                     searched_region=region)
    arguments.update(kwargs)
    return segmentation_entry(**arguments)


def _cls_draft(**kwargs):
    image, lesion, _, saliency, box = _volume()
    arguments = dict(command="sct_classify_lesion", input_path=INPUT, image=image,
                     zooms_mm=(3.0, 0.8, 0.6), lesion=lesion, cord_box=box,
                     probabilities={"tumor_vs_demyelinating (P tumor)": 0.91},
                     diagnosis="ependymoma", saliency={"tumor_vs_demyelinating": saliency})
    arguments.update(kwargs)
    return classification_entry(**arguments)


def _record_files(qc: Path) -> list[Path]:
    return sorted((qc / "_json").glob("*.json"))


def _composite(background: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """What a browser shows: the RGBA overlay drawn over the background."""
    alpha = overlay[..., 3:4].astype(np.float64) / 255.0
    return np.round(background * (1 - alpha) + overlay[..., :3] * alpha).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Records


def test_records_have_exactly_sct_keys_and_types(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    qc = tmp_path / "qc"
    add_entry(qc, _seg_draft(command_line="sct_deepseg_imlesion -i sub-01_T2w.nii.gz -qc qc"))
    add_entry(qc, _cls_draft())
    files = _record_files(qc)
    assert len(files) == 4           # lesion + searched region; lesion + one Grad-CAM map
    documents = [json.loads(path.read_text()) for path in files]
    for path, document in zip(files, documents):
        assert list(document) == list(SCT_RECORD_KEYS)
        assert all(isinstance(value, str) for value in document.values())
        timestamp = RECORD_NAME.fullmatch(path.name).group(1)
        assert (document["dataset"], document["subject"], document["contrast"]) == \
            ("ds", "sub-01", "anat")
        assert document["inputFile"] == "sub-01_T2w.nii.gz"
        assert document["plane"] == "Sagittal"
        assert document["rank"] == "" and document["qc"] == ""
        assert document["path"] == str(tmp_path)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", document["date"])
        folder = f"ds/sub-01/anat/{document['command']}/{timestamp}/"
        assert document["backgroundImage"] == folder + "background_img.png"
        assert document["overlayImage"] == folder + "overlay_img.png"
        background = decode_png((qc / document["backgroundImage"]).read_bytes())
        overlay = decode_png((qc / document["overlayImage"]).read_bytes())
        assert background.shape[2] == 3 and overlay.shape[2] == 4
        assert background.shape[:2] == overlay.shape[:2]
        alpha = overlay[..., 3]
        assert set(np.unique(alpha)) == {0, 255}                   # transparent around the overlay
        assert np.all(overlay[alpha == 0] == 0)
    assert [d["command"] for d in documents] == ["sct_deepseg_imlesion"] * 2 + \
        ["sct_classify_lesion"] * 2
    assert documents[0]["cmdline"] == "sct_deepseg_imlesion -i sub-01_T2w.nii.gz -qc qc"
    assert documents[2]["cmdline"] == "sct_classify_lesion"          # default: the command

    # Our index knows which record shows what; the overlay over the background gives our picture.
    segmentation, classification = read_index(qc)
    assert [c for c, _ in segmentation.sct_records] == [
        "lesion (red) (zoomed on the cord box)",
        "region searched for the lesion (light blue), whole field of view"]
    assert [c for c, _ in classification.sct_records] == [
        "lesion (red)", "Grad-CAM saliency: tumor_vs_demyelinating (lesion outlined in white)"]
    assert [name for _, name in segmentation.sct_records + classification.sct_records] == \
        [path.name for path in files]
    pictures = dict(segmentation.pictures) | {f"cls {c}": p for c, p in classification.pictures}
    for (caption, _), document in zip(segmentation.sct_records + tuple(
            (f"cls {c}", n) for c, n in classification.sct_records), documents):
        ours = decode_png((qc / pictures[caption]).read_bytes())
        shown = _composite(decode_png((qc / document["backgroundImage"]).read_bytes()),
                           decode_png((qc / document["overlayImage"]).read_bytes()))
        assert np.array_equal(shown, ours), caption


def test_searched_region_is_drawn_and_optional(tmp_path):
    add_entry(tmp_path / "with", _seg_draft())
    add_entry(tmp_path / "without", _seg_draft(searched_region=None))
    assert len(_record_files(tmp_path / "without")) == 1            # the lesion only
    region_record = json.loads(_record_files(tmp_path / "with")[1].read_text())
    overlay = decode_png((tmp_path / "with" / region_record["overlayImage"]).read_bytes())
    drawn = overlay[overlay[..., 3] == 255, :3]
    assert len(drawn) > 1000
    assert np.any(np.all(drawn == REGION_RGB, axis=1))             # its solid outline
    details = dict(read_index(tmp_path / "with")[0].details)
    assert details["region searched"].endswith(" cm3")
    with pytest.raises(ValueError, match="region"):
        _seg_draft(searched_region=np.ones((3, 3, 3), bool))


def test_several_entries_give_several_records(tmp_path):
    now = dt.datetime(2025, 5, 6, 7, 8, 9, 123456)
    for _ in range(3):                                              # same microsecond each time
        add_entry(tmp_path, _cls_draft(saliency=None), now=now)
    files = _record_files(tmp_path)
    assert [p.name for p in files] == [
        f"qc_2025_05_06_070809.{123456 + k}.json" for k in range(3)]
    assert len({json.loads(p.read_text())["backgroundImage"] for p in files}) == 3
    assert [r.record_name for r in read_records(tmp_path)] == [p.name for p in files]
    assert [n for e in read_index(tmp_path) for _, n in e.sct_records] == [p.name for p in files]
    assert list(tmp_path.rglob("*.tmp")) == []


def _small_draft(k: int) -> QcDraft:
    background = np.full((6, 8, 3), 30, np.uint8)
    composite = background.copy()
    composite[2:4, 2:6] = (255, 32, 32)
    return QcDraft(command="sct_classify_lesion", input_path=f"/d/ds/sub-{k:02d}/anat/t2.nii.gz",
                   pictures=(QcPicture("p", "p", composite),),
                   pairs=(PicturePair("lesion", background, composite),))


def test_concurrent_writers_keep_every_record(tmp_path):
    now = dt.datetime(2025, 1, 1, 0, 0, 0, 0)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(functools.partial(add_entry, now=now),
                     [(tmp_path, _small_draft(k)) for k in range(8)])
    records = read_records(tmp_path)
    assert len(records) == 8 and len({r.record_name for r in records}) == 8
    assert sorted(r.subject for r in records) == [f"sub-{k:02d}" for k in range(8)]
    assert all((tmp_path / r.overlay_image).is_file() for r in records)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_invalid_records_are_skipped(tmp_path, caplog):
    add_entry(tmp_path, _small_draft(1))
    (tmp_path / "_json" / "qc_broken.json").write_text("{")
    (tmp_path / "_json" / "qc_other.json").write_text(json.dumps({"command": "x"}))
    add_entry(tmp_path, _small_draft(2))
    assert len(read_records(tmp_path)) == 2
    assert "qc_broken.json" in caplog.text and "missing keys" in caplog.text
    with pytest.raises(ValueError, match="not a string"):
        SctRecord.from_json({key: 1 if key == "date" else "" for key in SCT_RECORD_KEYS})
    assert SctRecord.from_json({key: 3 if key == "rank" else "" for key in SCT_RECORD_KEYS}).rank \
        == "3"


def test_rgba_png():
    rgba = np.random.default_rng(2).integers(0, 256, size=(5, 7, 4), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(rgba, with_alpha=True)), rgba)
    with pytest.raises(ValueError):
        encode_png(rgba[..., :3], with_alpha=True)
    with pytest.raises(ValueError):
        encode_png(rgba)                           # 4 channels only when asked for


# --------------------------------------------------------------------------------------------
# A QC folder in SCT's layout

SCT_TIMESTAMP = "2025_03_07_100540.073184"
# A stand-in for SCT's page: it reads js/datasets.js and, for each record, draws the overlay
# picture over the background picture, as SCT's ImageOverlay component does.
SCT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="UTF-8"><title>SCT QC Report</title></head>
<body><script src="js/datasets.js"></script><div id="root"></div>
<script>
var root=document.getElementById('root');
(window.SCT_QC_DATASETS||[]).forEach(function(d){
  var box=document.createElement('div');box.className='sct-entry';box.setAttribute('data-command',d.command);
  box.style.position='relative';
  [d.backgroundImage,d.overlayImage].forEach(function(src,k){var im=document.createElement('img');
    im.src=src;if(k){im.style.position='absolute';im.style.left='0';im.style.top='0';}box.appendChild(im);});
  root.appendChild(box);
});
window.addEventListener('load',function(){
  var imgs=Array.prototype.slice.call(document.images);
  document.documentElement.setAttribute('data-entries',String(root.children.length));
  document.documentElement.setAttribute('data-broken',String(imgs.filter(function(im){
    return !(im.complete&&im.naturalWidth>0);}).length));
});
</script></body></html>
"""


def _sct_fixture(qc: Path) -> dict:
    """A QC folder as SCT 7 leaves it after one sct_deepseg run (qc2.create_qc_entry)."""
    folder = Path("sct_testing_data", "sub-01", "anat", "sct_deepseg", SCT_TIMESTAMP)
    (qc / folder).mkdir(parents=True)
    background = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    overlay = np.zeros((48, 64, 4), np.uint8)
    overlay[20:28, 10:50] = (255, 0, 0, 255)
    write_png(qc / folder / "background_img.png", background)
    write_png(qc / folder / "overlay_img.png", overlay, with_alpha=True)
    record = {
        "path": "/home/user/data/sub-01/anat",
        "cmdline": "sct_deepseg spinalcord -i sub-01_T2w.nii.gz -qc qc",
        "command": "sct_deepseg", "sctVersion": "7.1", "dataset": "sct_testing_data",
        "subject": "sub-01", "contrast": "anat", "inputFile": "sub-01_T2w.nii.gz",
        "plane": "Axial", "backgroundImage": (folder / "background_img.png").as_posix(),
        "overlayImage": (folder / "overlay_img.png").as_posix(), "date": "2025-03-07 10:05:40",
        "rank": "", "qc": "",
    }
    assert list(record) == list(SCT_RECORD_KEYS)
    (qc / "_json").mkdir()
    (qc / "_json" / f"qc_{SCT_TIMESTAMP}.json").write_text(json.dumps(record, indent=1))
    (qc / "js").mkdir()
    (qc / "js" / "datasets.js").write_text(f"window.SCT_QC_DATASETS = {json.dumps([record])};")
    (qc / "index.html").write_text(SCT_PAGE)
    return record


def _datasets_js(qc: Path) -> list:
    text = (qc / "js" / "datasets.js").read_text()
    prefix, suffix = "window.SCT_QC_DATASETS = ", ";"
    assert text.startswith(prefix) and text.endswith(suffix)
    return json.loads(text[len(prefix):-len(suffix)])


def test_sct_folder_is_kept_and_extended(tmp_path):
    qc = tmp_path / "qc"
    sct_record = _sct_fixture(qc)
    sct_record_text = (qc / "_json" / f"qc_{SCT_TIMESTAMP}.json").read_text()
    page = add_entry(qc, _seg_draft())
    assert add_entry(qc, _cls_draft()) == page == qc / "index_sct_lesion_classify.html"
    assert (qc / "index.html").read_text() == SCT_PAGE                  # SCT's page untouched
    assert (qc / "_json" / f"qc_{SCT_TIMESTAMP}.json").read_text() == sct_record_text
    datasets = _datasets_js(qc)                  # SCT's page data now lists ours too
    assert datasets[0] == sct_record
    assert [d["command"] for d in datasets[1:]] == ["sct_deepseg_imlesion"] * 2 + \
        ["sct_classify_lesion"] * 2
    assert datasets == [json.loads(p.read_text()) for p in _record_files(qc)]
    assert [r.command for r in read_records(qc)][0] == "sct_deepseg"


# --------------------------------------------------------------------------------------------
# SCT's own writer, where SCT is importable (a stand-in with SCT 7's create_qc_entry contract)


def _fake_sct(monkeypatch, calls: list):
    @contextlib.contextmanager
    def create_qc_entry(path_input, path_qc, command, cmdline, plane, dataset, subject,
                        image_extension="png"):
        calls.append(dict(path_input=path_input, command=command, cmdline=cmdline, plane=plane,
                          dataset=dataset, subject=subject))
        now = dt.datetime.now() + dt.timedelta(microseconds=len(calls))
        timestamp = now.strftime("%Y_%m_%d_%H%M%S.%f")
        dataset = dataset or path_input.parent.parent.parent.name
        subject = subject or path_input.parent.parent.name
        folder = path_qc / dataset / subject / path_input.parent.name / command / timestamp
        folder.mkdir(parents=True, exist_ok=True)
        images = {"path_background_img": folder / f"background_img.{image_extension}",
                  "path_overlay_img": folder / f"overlay_img.{image_extension}"}
        yield images
        for path in images.values():
            if not path.exists():
                raise FileNotFoundError(path)
        (path_qc / "_json").mkdir(exist_ok=True)
        (path_qc / "_json" / f"qc_{timestamp}.json").write_text(json.dumps({
            "path": os.getcwd(), "cmdline": cmdline, "command": command, "sctVersion": "7.fake",
            "dataset": dataset, "subject": subject, "contrast": path_input.parent.name,
            "inputFile": path_input.name, "plane": plane,
            "backgroundImage": str(images["path_background_img"].relative_to(path_qc)),
            "overlayImage": str(images["path_overlay_img"].relative_to(path_qc)),
            "date": now.strftime("%Y-%m-%d %H:%M:%S"), "rank": "", "qc": ""}))
        (path_qc / "index.html").write_text(SCT_PAGE)              # SCT copies its assets

    qc2 = types.ModuleType("spinalcordtoolbox.reports.qc2")
    qc2.create_qc_entry = create_qc_entry
    package = types.ModuleType("spinalcordtoolbox")
    reports = types.ModuleType("spinalcordtoolbox.reports")
    package.reports, reports.qc2 = reports, qc2
    for name, module in (("spinalcordtoolbox", package), ("spinalcordtoolbox.reports", reports),
                         ("spinalcordtoolbox.reports.qc2", qc2)):
        monkeypatch.setitem(sys.modules, name, module)


def test_sct_writer_is_used_when_importable(tmp_path, monkeypatch):
    calls: list = []
    _fake_sct(monkeypatch, calls)
    qc = tmp_path / "qc"
    page = add_entry(qc, _cls_draft(command_line="sct_classify_lesion -i x -qc qc",
                                    subject="sub-07"))
    assert page == qc / "index_sct_lesion_classify.html"          # SCT's page took index.html
    assert [c["plane"] for c in calls] == ["Sagittal", "Sagittal"]
    assert calls[0]["cmdline"] == "sct_classify_lesion -i x -qc qc"
    assert calls[0]["path_input"] == Path(INPUT) and calls[0]["subject"] == "sub-07"
    assert calls[0]["dataset"] is None                            # SCT derives it
    records = read_records(qc)
    assert [r.sct_version for r in records] == ["7.fake", "7.fake"]
    assert [n for _, n in read_index(qc)[0].sct_records] == [r.record_name for r in records]
    assert decode_png((qc / records[0].overlay_image).read_bytes()).shape[2] == 4
    assert 'data-origin="ours"' in page.read_text()


def test_sct_writer_failure_is_a_processing_error(tmp_path, monkeypatch):
    _fake_sct(monkeypatch, [])
    qc2 = sys.modules["spinalcordtoolbox.reports.qc2"]

    @contextlib.contextmanager
    def broken(path_input, path_qc, command, cmdline, plane, dataset, subject):
        raise OSError("disk full")
        yield  # pragma: no cover

    monkeypatch.setattr(qc2, "create_qc_entry", broken)
    with pytest.raises(ProcessingError, match="SCT's QC writer failed"):
        add_entry(tmp_path, _small_draft(1))


# --------------------------------------------------------------------------------------------
# Real browser

def _root_attributes(dom: str) -> dict:
    root = re.search(r"<html[^>]*>", dom)
    assert root, dom[:500]
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', root.group(0)))


def test_both_kinds_of_entries_render_in_headless_chromium(tmp_path):
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    qc = tmp_path / "qc"
    _sct_fixture(qc)
    add_entry(qc, _seg_draft())
    page = add_entry(qc, _cls_draft())

    dom = _run_chromium(executable, "--dump-dom", page.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    records = re.findall(r'<section class="record [a-z]+"[^>]*>', dom.stdout)
    origins = [(re.search(r'data-origin="(\w+)"', r).group(1),
                re.search(r'data-command="([\w-]+)"', r).group(1)) for r in records]
    assert sorted(origins) == sorted([("other", "sct_deepseg")]
                                     + [("ours", "sct_deepseg_imlesion")] * 2
                                     + [("ours", "sct_classify_lesion")] * 2)
    pictures = sum(len(e.pictures) for e in read_index(qc))
    assert _root_attributes(dom.stdout) == {
        "data-images-total": str(pictures + 2 * 5), "data-images-broken": "0",
        "data-images-checked": "yes"}
    assert "sub-01_T2w.nii.gz" in dom.stdout and "sct_deepseg spinalcord" in dom.stdout

    sct = _run_chromium(executable, "--dump-dom", (qc / "index.html").resolve().as_uri())
    assert sct.returncode == 0, sct.stderr[-2000:]
    assert _root_attributes(sct.stdout) == {"data-entries": "5", "data-broken": "0"}

    screenshot = Path(os.environ.get("QC_SCREENSHOT_DIR", tmp_path)) / "qc_report.png"
    shot = _run_chromium(executable, "--window-size=1280,1600", f"--screenshot={screenshot}",
                         page.resolve().as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
