"""The QC report: one self-contained HTML page per QC folder, appended by every run.

Layout of a QC folder (``-qc FOLDER``)::

    FOLDER/
      index.html              the page (regenerated from index.json by every run)
      index.json              {"format": ..., "version": 1, "entries": [...]}, oldest first
      .qc_index.lock          lock file (kept; empty)
      <dataset>/<subject>/<command>/<YYYYmmdd-HHMMSS>-<8 hex>/*.png
      _json/qc_<timestamp>.json                 the same entries as SCT 7 QC records, one per
      <dataset>/<subject>/<contrast>/<command>/<timestamp>/background_img.png, overlay_img.png
                                                picture pair (lesion, searched region, Grad-CAM)

Every entry is also recorded in SCT 7's QC format (:mod:`.sct_records`), so that it appears in
SCT's own QC report beside SCT's entries (``sct_deepseg``...), and this module's page lists every
SCT-format record of the folder (SCT's and ours) between the table of entries and the entries'
details, each as its background picture with the overlay drawn on top (click to hide or show
the overlay).

Several processes may write to the same folder at once (a cohort run with local workers): each
writes its PNGs into its own uniquely named entry folder first, then takes an exclusive lock
(``fcntl.flock`` on ``.qc_index.lock``), reads ``index.json``, appends its entry and rewrites
``index.json`` and ``index.html``, each through a temporary file in the folder and a rename, and
releases the lock. The SCT-format records are written under the same lock, each to a new file.
Readers (a browser) therefore never see a partial file, and no entry is lost.
The lock is POSIX only (Linux, macOS); where ``fcntl`` is missing (Windows) entries are appended
without a lock, which is safe for one process at a time, and a warning says so.

The page is self-contained: inline CSS and a few lines of inline JavaScript (a filter box and a
check that every picture loaded), no external resource; pictures are referenced by relative path,
so the folder can be moved or archived as a whole. Every string is HTML-escaped and every picture
path URL-quoted.

SCT's own QC also writes ``index.html``. This module never overwrites an ``index.html`` that it did
not generate: when the folder already holds a foreign one, the page is written as
``index_sct_lesion_classify.html`` instead (and a warning is logged).

``segmentation_entry`` and ``classification_entry`` build the entries of the two commands from
canonical numpy arrays and plain values, so this package depends on nothing but ``io``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np

from sct_lesion_classify.errors import ProcessingError
from sct_lesion_classify.io.atomic import write_json_atomic, write_text_atomic
from sct_lesion_classify.io.lock import exclusive_lock
from sct_lesion_classify.qc.mosaic import (
    DISPLAY_CONVENTION,
    Box,
    robust_window,
    sagittal_mosaic,
    select_slices,
)
from sct_lesion_classify.qc.png import write_png
from sct_lesion_classify.qc.sct_records import (
    RECORDS_FOLDER,
    PicturePair,
    SctRecord,
    read_records,
    write_records,
)
from sct_lesion_classify.qc.sct_records import safe_component as _safe_component

logger = logging.getLogger(__name__)

INDEX_JSON = "index.json"
INDEX_HTML = "index.html"
FALLBACK_HTML = "index_sct_lesion_classify.html"
LOCK_NAME = ".qc_index.lock"
INDEX_FORMAT = "sct_lesion_classify-qc"
INDEX_VERSION = 1
_GENERATOR_MARK = '<meta name="generator" content="sct_lesion_classify-qc">'


@dataclass(frozen=True)
class QcPicture:
    """A picture waiting to be written: ``filename`` is a plain name inside the entry folder."""

    caption: str
    filename: str
    rgb: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class QcDraft:
    """An entry before it is written (what the builders return and :func:`add_entry` takes).

    ``dataset`` and ``subject`` default to values guessed from ``input_path``
    (:func:`default_dataset_subject`), as SCT does when ``-qc-dataset`` / ``-qc-subject`` are
    not given. ``pairs`` are recorded in SCT's format too (one record each); ``command_line``
    is their ``cmdline`` (default: the command's name).
    """

    command: str
    input_path: str
    pictures: tuple[QcPicture, ...]
    details: tuple[tuple[str, str], ...] = ()
    dataset: str | None = None
    subject: str | None = None
    pairs: tuple[PicturePair, ...] = ()
    command_line: str | None = None


@dataclass(frozen=True)
class QcEntry:
    """One recorded entry of the index.

    Attributes
    ----------
    pictures
        ``(caption, path of the PNG relative to the QC folder, with "/" separators)``.
    details
        Key/value rows shown with the pictures (probabilities, diagnosis, warnings...).
    entry_id
        Unique name of the entry folder (also the HTML anchor).
    sct_records
        ``(caption, file name in _json/)`` of the entry's SCT-format records.
    """

    command: str
    dataset: str
    subject: str
    input_path: str
    date: str
    pictures: tuple[tuple[str, str], ...]
    details: tuple[tuple[str, str], ...]
    entry_id: str = ""
    sct_records: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        return {
            "entry_id": self.entry_id, "command": self.command, "dataset": self.dataset,
            "subject": self.subject, "input_path": self.input_path, "date": self.date,
            "pictures": [list(p) for p in self.pictures],
            "details": [list(d) for d in self.details],
            "sct_records": [list(r) for r in self.sct_records],
        }

    @classmethod
    def from_json(cls, document: Mapping) -> "QcEntry":
        return cls(
            command=str(document["command"]), dataset=str(document["dataset"]),
            subject=str(document["subject"]), input_path=str(document["input_path"]),
            date=str(document["date"]),
            pictures=tuple((str(c), str(p)) for c, p in document.get("pictures", [])),
            details=tuple((str(k), str(v)) for k, v in document.get("details", [])),
            entry_id=str(document.get("entry_id", "")),
            sct_records=tuple((str(c), str(r)) for c, r in document.get("sct_records", [])),
        )


# --------------------------------------------------------------------------------------------
# Names and paths


def default_dataset_subject(input_path: str | os.PathLike) -> tuple[str, str]:
    """Guess ``(dataset, subject)`` from an input path.

    In a BIDS tree (``.../<dataset>/sub-XX[/ses-YY]/anat/file.nii.gz``) the subject is the
    ``sub-`` folder and the dataset the folder above it; elsewhere the subject is the input's
    folder name and the dataset the one above.
    """
    parts = Path(os.path.abspath(input_path)).parts[:-1]
    for k in range(len(parts) - 1, -1, -1):
        if parts[k].startswith("sub-"):
            return (parts[k - 1] if k > 0 else "dataset"), parts[k]
    subject = parts[-1] if parts else "subject"
    dataset = parts[-2] if len(parts) > 1 else "dataset"
    return dataset or "dataset", subject or "subject"


def _unique_entry_id(now: _dt.datetime) -> str:
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# Index and lock


def read_index(qc_folder: str | os.PathLike) -> list[QcEntry]:
    """Entries recorded in ``qc_folder/index.json`` (oldest first); [] when there is none.

    Raises
    ------
    ProcessingError
        If the index exists but is not a valid QC index (it is then left untouched).
    """
    path = Path(qc_folder) / INDEX_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ProcessingError(f"{path}: cannot read the QC index ({exc.strerror})") from exc
    try:
        document = json.loads(text)
        if document.get("format") != INDEX_FORMAT:
            raise ValueError("not a sct_lesion_classify QC index")
        return [QcEntry.from_json(item) for item in document["entries"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProcessingError(f"{path}: invalid QC index ({exc}); move it away to start a new "
                              "report") from exc


def _html_path(qc_folder: Path) -> Path:
    path = qc_folder / INDEX_HTML
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        return path
    except OSError:
        return qc_folder / FALLBACK_HTML
    if _GENERATOR_MARK in head:
        return path
    logger.warning("QC: %s was written by another program (SCT?); writing %s instead", path,
                   FALLBACK_HTML)
    return qc_folder / FALLBACK_HTML


def add_entry(qc_folder: str | os.PathLike, draft: QcDraft,
              *, now: _dt.datetime | None = None) -> Path:
    """Write the draft's pictures and append the entry to the folder's report.

    The pictures go to ``qc_folder/<dataset>/<subject>/<command>/<entry id>/``; then, under the
    folder's lock, the draft's picture pairs are recorded in SCT's format
    (:func:`.sct_records.write_records`), the entry is appended to ``index.json`` and
    ``index.html`` is regenerated.

    Parameters
    ----------
    qc_folder
        The QC folder (created when missing).
    draft
        What to record, e.g. from :func:`segmentation_entry` or :func:`classification_entry`.
    now
        Date of the entry (default: now, local time).

    Returns
    -------
    Path
        The HTML page to open (``qc_folder/index.html``, see the module docstring).

    Raises
    ------
    ProcessingError
        If the folder cannot be written or holds an invalid index.
    """
    qc_folder = Path(qc_folder)
    now = now or _dt.datetime.now()
    default_dataset, default_subject = default_dataset_subject(draft.input_path)
    dataset = draft.dataset or default_dataset
    subject = draft.subject or default_subject
    entry_id = _unique_entry_id(now)
    relative = Path(_safe_component(dataset), _safe_component(subject),
                    _safe_component(draft.command), entry_id)
    entry_folder = qc_folder / relative
    try:
        entry_folder.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise ProcessingError(f"{entry_folder}: cannot create the QC folder ({exc.strerror})") \
            from exc

    pictures = []
    used: set[str] = set()
    for picture in draft.pictures:
        stem = _safe_component(Path(picture.filename).stem or picture.caption)
        name, k = f"{stem}.png", 1
        while name in used:
            k += 1
            name = f"{stem}-{k}.png"
        used.add(name)
        write_png(entry_folder / name, picture.rgb)
        pictures.append((picture.caption, (relative / name).as_posix()))

    encoded_pairs = [pair.encode() for pair in draft.pairs]
    with exclusive_lock(qc_folder / LOCK_NAME, what="QC index"):
        entries = read_index(qc_folder)
        sct_records = write_records(
            qc_folder, encoded_pairs, command=draft.command,
            cmdline=draft.command_line or draft.command, input_path=draft.input_path,
            dataset=draft.dataset, subject=draft.subject, now=now)
        entries.append(QcEntry(
            command=draft.command, dataset=dataset, subject=subject,
            input_path=str(draft.input_path), date=now.strftime("%Y-%m-%d %H:%M:%S"),
            pictures=tuple(pictures), details=tuple((str(k), str(v)) for k, v in draft.details),
            entry_id=entry_id, sct_records=sct_records))
        write_json_atomic(qc_folder / INDEX_JSON, {
            "format": INDEX_FORMAT, "version": INDEX_VERSION,
            "entries": [e.to_json() for e in entries],
        })
        page = _html_path(qc_folder)
        write_text_atomic(page, render_html(entries, read_records(qc_folder)))
    logger.debug("QC entry added to %s", page)
    return page


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23}
header{background:#1f3a5f;color:#fff;padding:12px 20px;position:sticky;top:0;z-index:2;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0;font-weight:600}
header .count{opacity:.8;font-size:13px}
header input{padding:5px 8px;border-radius:4px;border:0;min-width:260px;font-size:14px}
header .note{font-size:12px;opacity:.75;margin-left:auto}
#missing{display:none;background:#b00020;color:#fff;padding:8px 20px}
main{padding:12px 20px}
table{border-collapse:collapse;background:#fff;font-size:13px}
table.index{width:100%;margin-bottom:20px}
th,td{border:1px solid #d6d9de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#e8ebf0}
table.index tr:hover td{background:#eef4ff}
td.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
section.entry{background:#fff;border:1px solid #d6d9de;border-radius:6px;margin:0 0 20px;padding:10px 14px}
section.entry h2{font-size:15px;margin:0 0 6px}
section.entry h2 .date{font-weight:400;color:#5a6170;font-size:13px;margin-left:8px}
.meta{font-size:12px;color:#5a6170;margin-bottom:8px;word-break:break-all}
table.details{margin-bottom:10px}
table.details td:first-child{font-weight:600;background:#f7f8fa}
tr.warning td{background:#fff4e0}
.pictures{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;max-width:100%}
figure img{display:block;max-width:100%;height:auto;background:#181818;image-rendering:auto}
figcaption{font-size:12px;color:#3b4150;margin-top:3px}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.hidden{display:none}
h2.records{font-size:16px;margin:26px 0 4px}
p.records{font-size:12px;color:#5a6170;margin:0 0 10px}
.records-grid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;margin-bottom:20px}
section.record{background:#fff;border:1px solid #d6d9de;border-left:4px solid #8a94a6;border-radius:6px;padding:8px 12px;width:400px;max-width:100%;box-sizing:border-box}
section.record.ours{border-left-color:#1f3a5f}
section.record h3{font-size:13px;margin:0 0 4px}
section.record .meta{font-size:11px}
section.record h3 .date{font-weight:400;color:#5a6170;font-size:12px;margin-left:8px}
.composed{position:relative;display:block;cursor:pointer;background:#181818}
.composed img{display:block;width:100%;height:auto}
.composed img.overlay{position:absolute;left:0;top:0;width:100%;height:100%}
.composed.off img.overlay{visibility:hidden}
.trust{display:inline-block;margin-left:10px;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
.trust-ok{background:#2e7d32}.trust-review{background:#e08a00}.trust-unreliable{background:#c62828}
"""

_SCRIPT = """
(function(){
  var filter=document.getElementById('filter');
  function apply(){
    var q=filter.value.toLowerCase().trim();
    document.querySelectorAll('[data-search]').forEach(function(el){
      el.classList.toggle('hidden', q!=='' && el.getAttribute('data-search').indexOf(q)<0);
    });
  }
  filter.addEventListener('input',apply);
  document.querySelectorAll('.composed').forEach(function(el){
    el.addEventListener('click',function(){el.classList.toggle('off');});
  });
  function check(){
    var imgs=Array.prototype.slice.call(document.images);
    var bad=imgs.filter(function(im){return !(im.complete&&im.naturalWidth>0);});
    document.documentElement.setAttribute('data-images-total',String(imgs.length));
    document.documentElement.setAttribute('data-images-broken',String(bad.length));
    document.documentElement.setAttribute('data-images-checked','yes');
    if(bad.length){
      var box=document.getElementById('missing');
      box.textContent=bad.length+' of '+imgs.length+' pictures could not be loaded (moved or deleted files?): '
        +bad.map(function(im){return im.getAttribute('src');}).join(', ');
      box.style.display='block';
    }
  }
  if(document.readyState==='complete'){check();}else{window.addEventListener('load',check);}
})();
"""

_LEGEND = ('<div class="legend">'
           '<span><i style="background:#ff2020"></i>lesion</span>'
           '<span><i style="background:#ffdc00"></i>cord mask</span>'
           '<span><i style="background:#00e600"></i>cord box</span>'
           '<span><i style="background:#00beff"></i>region searched for the lesion</span>'
           '<span><i style="background:linear-gradient(90deg,#00f,#0ff,#ff0,#f00)"></i>'
           'saliency (Grad-CAM)</span>'
           f'<span>{html.escape(DISPLAY_CONVENTION)}; numbers: sagittal slice index</span></div>')


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _url(relative_path: str) -> str:
    return _e(quote(relative_path, safe="/"))


#: The details key of the trust level, shown as a badge at the top of the entry.
TRUST_KEY = "trust"


def _trust_badge(entry: QcEntry) -> str:
    for key, value in entry.details:
        if key == TRUST_KEY:
            return f'<span class="trust trust-{_e(value)}">trust: {_e(value)}</span>'
    return ""


def _highlight(entry: QcEntry) -> str:
    for key, value in entry.details:
        if key.lower() == "diagnosis":
            return value
    return ""


def _records_html(entries: Sequence[QcEntry], records: Sequence[SctRecord]) -> str:
    """The SCT-format records, newest first: background picture with the overlay on top."""
    if not records:
        return ""
    ours = {name: (caption, entry) for entry in entries for caption, name in entry.sct_records}
    ordered = sorted(records, key=lambda r: (r.date, r.record_name), reverse=True)
    sections = []
    for number, record in zip(range(len(ordered), 0, -1), ordered):
        caption, entry = ours.get(record.record_name, ("", None))
        origin = "ours" if entry is not None else "other"
        search = _e(" ".join([record.dataset, record.subject, record.contrast, record.command,
                              record.input_file, record.date, caption]).lower())
        link = (f' &middot; <a href="#e-{_e(_safe_component(entry.entry_id))}">entry</a>'
                if entry is not None and entry.entry_id else "")
        sections.append(
            f'<section class="record {origin}" data-search="{search}" '
            f'data-record="{_e(record.record_name)}" data-command="{_e(record.command)}" '
            f'data-origin="{origin}">'
            f"<h3>{_e(record.command)} &middot; {_e(record.dataset)} / {_e(record.subject)} / "
            f'{_e(record.contrast)}<span class="date">{_e(record.date)}</span></h3>'
            f'<div class="meta">{_e(caption + " · ") if caption else ""}input: '
            f"{_e(record.input_file)} &middot; {_e(record.plane)} &middot; "
            f"{_e(record.sct_version)}{link}<br>{_e(record.cmdline)}</div>"
            f'<div class="composed" title="click to hide or show the overlay">'
            f'<img class="background" src="{_url(record.background_image)}" '
            f'alt="{_e(record.command)} background">'
            f'<img class="overlay" src="{_url(record.overlay_image)}" '
            f'alt="{_e(record.command)} overlay"></div></section>')
    return (f'<h2 class="records" id="sct-records">SCT QC records ({len(ordered)})</h2>'
            f'<p class="records">Every record of {RECORDS_FOLDER}/ in SCT 7\'s QC format, written '
            "by SCT's commands and by ours (open SCT's own page, index.html where SCT wrote it, to "
            "mark them Pass / Fail / Artifact). Click a picture to hide or show its overlay.</p>"
            + f'<div class="records-grid">{"".join(sections)}</div>')


def render_html(entries: Sequence[QcEntry], records: Sequence[SctRecord] = ()) -> str:
    """The report page, as one self-contained HTML string: the table of ``entries``, the
    SCT-format ``records`` of the folder (:func:`.sct_records.read_records`, SCT's and ours) as
    a grid, then each entry with its details and pictures; newest first."""
    ordered = list(reversed(list(entries)))
    rows, sections = [], []
    for number, entry in zip(range(len(ordered), 0, -1), ordered):
        anchor = "e-" + _safe_component(entry.entry_id or str(number))
        search = _e(" ".join([entry.dataset, entry.subject, entry.command, entry.input_path,
                              entry.date] + [f"{k} {v}" for k, v in entry.details]).lower())
        rows.append(
            f'<tr data-search="{search}"><td><a href="#{anchor}">{number}</a></td>'
            f"<td>{_e(entry.date)}</td><td>{_e(entry.dataset)}</td><td>{_e(entry.subject)}</td>"
            f"<td>{_e(entry.command)}</td><td>{_e(_highlight(entry))}</td>"
            f'<td class="path">{_e(entry.input_path)}</td></tr>')
        details = "".join(
            ('<tr class="warning">' if key.lower().startswith("warning") else "<tr>")
            + f"<td>{_e(key)}</td><td>{_e(value)}</td></tr>"
            for key, value in entry.details)
        figures = "".join(
            f'<figure><img src="{_url(path)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
            for caption, path in entry.pictures)
        sections.append(
            f'<section class="entry" id="{anchor}" data-search="{search}">'
            f"<h2>#{number} {_e(entry.command)} &middot; {_e(entry.dataset)} / "
            f'{_e(entry.subject)}<span class="date">{_e(entry.date)}</span>{_trust_badge(entry)}</h2>'
            f'<div class="meta">input: {_e(entry.input_path)}</div>'
            + (f'<table class="details">{details}</table>' if details else "")
            + f'<div class="pictures">{figures}</div></section>')
    table = ('<table class="index"><thead><tr><th>#</th><th>Date</th><th>Dataset</th>'
             "<th>Subject</th><th>Command</th><th>Diagnosis</th><th>Input</th></tr></thead>"
             f'<tbody>{"".join(rows)}</tbody></table>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"{_GENERATOR_MARK}"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>sct_lesion_classify QC</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>sct_lesion_classify QC report</h1>"
        f'<span class="count">{len(ordered)} entr{"y" if len(ordered) == 1 else "ies"}, '
        f'{len(records)} SCT record{"" if len(records) == 1 else "s"}</span>'
        '<input id="filter" type="search" placeholder="Filter: subject, command, diagnosis...">'
        '<span class="note">Research use only; not a medical device.</span></header>'
        '<div id="missing"></div><main>'
        f"{_LEGEND}{table}{_records_html(entries, records)}{''.join(sections)}</main>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


# --------------------------------------------------------------------------------------------
# Builders for the two commands


def _expand_box(box: Box | None, shape: tuple[int, ...], zooms_mm: Sequence[float],
                margin_mm: float) -> tuple[tuple[int, int], ...] | None:
    if box is None:
        return None
    pairs = []
    for axis, (start, stop) in enumerate(box):
        pad = int(np.ceil(margin_mm / float(zooms_mm[axis])))
        pairs.append((max(0, int(start) - pad), min(shape[axis], int(stop) + pad)))
    return tuple(pairs)


def _bbox_of(mask: np.ndarray | None) -> tuple[tuple[int, int], ...] | None:
    if mask is None or not np.any(mask):
        return None
    coords = np.nonzero(mask)
    return tuple((int(c.min()), int(c.max()) + 1) for c in coords)


def _lesion_details(lesion: np.ndarray | None, zooms_mm: Sequence[float]) -> list[tuple[str, str]]:
    if lesion is None:
        return []
    voxels = int(np.count_nonzero(lesion))
    if voxels == 0:
        return [("lesion", "none found (empty mask)")]
    volume = voxels * float(np.prod([float(z) for z in zooms_mm[:3]]))
    return [("lesion volume", f"{volume:.1f} mm3 ({voxels} voxels)")]


def segmentation_entry(
    *,
    command: str,
    input_path: str | os.PathLike,
    image: np.ndarray,
    zooms_mm: Sequence[float],
    lesion: np.ndarray | None = None,
    cord_mask: np.ndarray | None = None,
    cord_box: Box | None = None,
    details: Sequence[tuple[str, str]] = (),
    dataset: str | None = None,
    subject: str | None = None,
    max_slices: int = 12,
    zoom_margin_mm: float = 15.0,
    searched_region: np.ndarray | None = None,
    command_line: str | None = None,
    trust_level: str | None = None,
) -> QcDraft:
    """QC entry of the segmentation step: image, cord box and lesion overlay mosaics.

    Pictures (same slices in all): the whole field of view with the cord box (green) and
    cord mask outline (yellow); then the image alone and the image with the lesion overlay,
    both zoomed on the cord box (plus ``zoom_margin_mm``) when a box is given, so the two can be
    compared side by side; with ``searched_region``, the whole field of view with the region
    searched for the lesion (light blue).

    SCT-format records (:mod:`.sct_records`): the lesion overlay on the zoomed image, and the
    searched region on the whole field of view.

    Parameters
    ----------
    image, lesion, cord_mask
        Canonical arrays (lesion and cord mask boolean or 0/1; a soft lesion map is shown where
        > 0.5).
    zooms_mm
        Canonical voxel size.
    cord_box
        ``((x0, x1), (y0, y1), (z0, z1))`` half-open canonical voxel ranges of the crop.
    details
        Extra key/value rows (e.g. model name, threshold, warnings).
    searched_region
        Boolean canonical array of the image's shape: where the lesion was searched for (e.g. the
        region around the cord), or None.
    command_line
        The command line, for the SCT records' ``cmdline`` (default: the command's name).
    trust_level
        The segmentation's trust level: a coloured badge at the top of the entry, as in
        :func:`classification_entry`.
    """
    image = np.asarray(image)
    lesion_mask = None if lesion is None else _as_mask(lesion)
    region = None if searched_region is None else _as_mask(searched_region)
    cord = None if cord_mask is None else _as_mask(cord_mask)
    slices = select_slices(image.shape[0], lesion=lesion_mask, cord_box=cord_box, cord_mask=cord,
                           max_slices=max_slices, shape=image.shape)
    window = robust_window(image)
    zoom = _expand_box(cord_box, image.shape, zooms_mm, zoom_margin_mm) or \
        _expand_box(_bbox_of(cord), image.shape, zooms_mm, zoom_margin_mm)
    pictures = [
        QcPicture("cord box (green) and cord mask (yellow), whole field of view", "cordbox",
                  sagittal_mosaic(image, zooms_mm, window=window, slices=slices, cord_box=cord_box,
                                  cord_mask=cord).rgb),
        QcPicture("image" + (" (zoomed on the cord box)" if zoom else ""), "image",
                  sagittal_mosaic(image, zooms_mm, window=window, slices=slices,
                                  view_box=zoom).rgb),
    ]
    pairs = []
    if lesion_mask is not None:
        pictures.append(QcPicture(
            "lesion (red)" + (" (zoomed on the cord box)" if zoom else ""), "lesion",
            sagittal_mosaic(image, zooms_mm, window=window, slices=slices, lesion=lesion_mask,
                            view_box=zoom).rgb))
        pairs.append(PicturePair(pictures[-1].caption, pictures[1].rgb, pictures[-1].rgb))
    region_rows = []
    if region is not None:
        pictures.append(QcPicture(
            "region searched for the lesion (light blue), whole field of view", "region",
            sagittal_mosaic(image, zooms_mm, window=window, slices=slices, region=region).rgb))
        pairs.append(PicturePair(
            pictures[-1].caption,
            sagittal_mosaic(image, zooms_mm, window=window, slices=slices).rgb, pictures[-1].rgb))
        volume = np.count_nonzero(region) * float(np.prod([float(z) for z in zooms_mm[:3]]))
        region_rows.append(("region searched", f"{volume / 1000:.1f} cm3"))
    rows = _trust_rows(trust_level) + _lesion_details(lesion_mask, zooms_mm) + region_rows + [
        ("slices shown", ", ".join(str(s) for s in slices)),
    ] + [(str(k), str(v)) for k, v in details]
    return QcDraft(command=command, input_path=str(input_path), pictures=tuple(pictures),
                   details=tuple(rows), dataset=dataset, subject=subject, pairs=tuple(pairs),
                   command_line=command_line)


def _trust_rows(trust_level: str | None) -> list[tuple[str, str]]:
    """The details row of the trust badge (first row of an entry), or none."""
    return [] if trust_level is None else [(TRUST_KEY, str(trust_level))]


def _as_mask(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array > 0.5
    return array != 0


def _probability(value: float) -> str:
    return f"{float(value):.3f}"


def classification_entry(
    *,
    command: str,
    input_path: str | os.PathLike,
    image: np.ndarray,
    zooms_mm: Sequence[float],
    lesion: np.ndarray,
    probabilities: Mapping[str, float],
    diagnosis: str | None = None,
    class_probabilities: Mapping[str, float] | None = None,
    confidence: str | None = None,
    saliency: Mapping[str, np.ndarray] | None = None,
    cord_mask: np.ndarray | None = None,
    cord_box: Box | None = None,
    warnings: Sequence[str] = (),
    details: Sequence[tuple[str, str]] = (),
    dataset: str | None = None,
    subject: str | None = None,
    max_slices: int = 12,
    zoom_margin_mm: float = 15.0,
    command_line: str | None = None,
    trust_level: str | None = None,
) -> QcDraft:
    """QC entry of the classification step.

    Parameters
    ----------
    probabilities
        Per-model patient probability, e.g. ``{"tumor_vs_demyelinating (P tumor)": 0.91}``.
    diagnosis
        The most likely class (None when there is no diagnosis, e.g. an empty lesion mask).
    class_probabilities
        The composed class probabilities, e.g. ``{"astrocytoma": 0.62, ...}``.
    confidence
        The confidence flag (e.g. "high" / "low").
    saliency
        Grad-CAM maps per model name (canonical arrays of the image's shape); one mosaic each.
    warnings
        One row per warning.
    command_line
        The command line, for the SCT records' ``cmdline`` (default: the command's name).
    trust_level
        ``ok`` / ``review`` / ``unreliable`` (``sct_lesion_classify.trust``): a coloured badge at
        the top of the entry (the first details row, key :data:`TRUST_KEY`).

    The pictures are zoomed on the cord box (or the cord mask's bounding box, or the lesion's,
    plus ``zoom_margin_mm``) and show the slices with lesion first.
    """
    image = np.asarray(image)
    lesion_mask = _as_mask(lesion)
    cord = None if cord_mask is None else _as_mask(cord_mask)
    slices = select_slices(image.shape[0], lesion=lesion_mask, cord_box=cord_box, cord_mask=cord,
                           max_slices=max_slices, shape=image.shape)
    window = robust_window(image)
    zoom = (_expand_box(cord_box, image.shape, zooms_mm, zoom_margin_mm)
            or _expand_box(_bbox_of(cord), image.shape, zooms_mm, zoom_margin_mm)
            or _expand_box(_bbox_of(lesion_mask), image.shape, zooms_mm, 3 * zoom_margin_mm))
    pictures = [
        QcPicture("image", "image",
                  sagittal_mosaic(image, zooms_mm, window=window, slices=slices,
                                  view_box=zoom).rgb),
        QcPicture("lesion (red)", "lesion",
                  sagittal_mosaic(image, zooms_mm, window=window, slices=slices, lesion=lesion_mask,
                                  view_box=zoom).rgb),
    ]
    for model_name, saliency_map in (saliency or {}).items():
        pictures.append(QcPicture(
            f"Grad-CAM saliency: {model_name} (lesion outlined in white)",
            f"gradcam-{model_name}",
            sagittal_mosaic(image, zooms_mm, window=window, slices=slices, lesion=lesion_mask,
                            lesion_alpha=0.0,
                            lesion_outline_rgb=(255, 255, 255),
                            saliency=np.asarray(saliency_map), view_box=zoom).rgb))
    rows = _trust_rows(trust_level)
    if diagnosis is not None:
        rows.append(("diagnosis", str(diagnosis) + (f" (confidence: {confidence})"
                                                    if confidence else "")))
    else:
        rows.append(("diagnosis", "none"))
    for name, value in (class_probabilities or {}).items():
        rows.append((f"P({name})", _probability(value)))
    for name, value in probabilities.items():
        rows.append((f"model {name}", _probability(value)))
    rows += _lesion_details(lesion_mask, zooms_mm)
    rows.append(("slices shown", ", ".join(str(s) for s in slices)))
    rows += [("warning", str(w)) for w in warnings]
    rows += [(str(k), str(v)) for k, v in details]
    # SCT-format records: the lesion and each Grad-CAM map over the plain image (pictures[0]).
    pairs = tuple(PicturePair(p.caption, pictures[0].rgb, p.rgb) for p in pictures[1:])
    return QcDraft(command=command, input_path=str(input_path), pictures=tuple(pictures),
                   details=tuple(rows), dataset=dataset, subject=subject, pairs=pairs,
                   command_line=command_line)
