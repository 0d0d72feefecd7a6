"""QC report: sagittal mosaics with overlays (PNG, numpy only), an appendable HTML index and SCT 7 QC records.

Public API
----------
- :func:`png.encode_png`, :func:`png.write_png`
- :func:`mosaic.sagittal_mosaic`, :func:`mosaic.select_slices`
- :func:`report.add_entry`, :func:`report.segmentation_entry`,
  :func:`report.classification_entry`, :func:`report.read_index`, :class:`report.QcEntry`,
  :class:`report.QcDraft`, :class:`report.QcPicture`
- SCT 7 QC records (``_json/qc_<timestamp>.json``): :class:`sct_records.PicturePair`,
  :class:`sct_records.SctRecord`, :func:`sct_records.read_records`,
  :func:`sct_records.write_records`, :data:`sct_records.SCT_RECORD_KEYS`
"""

from sct_lesion_classify.qc.png import encode_png, write_png
from sct_lesion_classify.qc.report import (
    QcDraft,
    QcEntry,
    QcPicture,
    add_entry,
    classification_entry,
    default_dataset_subject,
    read_index,
    render_html,
    segmentation_entry,
)
from sct_lesion_classify.qc.sct_records import (
    SCT_RECORD_KEYS,
    PicturePair,
    SctRecord,
    read_records,
    write_records,
)

__all__ = [
    "SCT_RECORD_KEYS", "PicturePair", "QcDraft", "QcEntry", "QcPicture", "SctRecord", "add_entry",
    "classification_entry", "default_dataset_subject", "encode_png", "read_index",
    "read_records", "render_html", "segmentation_entry", "write_png", "write_records",
]
