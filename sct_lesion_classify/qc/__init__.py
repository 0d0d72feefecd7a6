"""QC report: sagittal mosaics with overlays (PNG, numpy only) and an appendable HTML index.

Public API
----------
- :func:`png.encode_png`, :func:`png.write_png`
- :func:`mosaic.sagittal_mosaic`, :func:`mosaic.select_slices`
- :func:`report.add_entry`, :func:`report.segmentation_entry`,
  :func:`report.classification_entry`, :func:`report.read_index`, :class:`report.QcEntry`,
  :class:`report.QcDraft`, :class:`report.QcPicture`
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

__all__ = [
    "QcDraft", "QcEntry", "QcPicture", "add_entry", "classification_entry",
    "default_dataset_subject", "encode_png", "read_index", "render_html", "segmentation_entry",
    "write_png",
]
