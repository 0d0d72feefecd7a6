"""Lesion segmentation, postprocessing and morphometry.

- :mod:`.postprocess`: ``sct_deepseg``-style postprocessing of the network output
  (``-thr``, ``-fill-holes``, ``-largest``, ``-remove-small``).
- :mod:`.morphometry`: per-lesion measures for the diagnosis JSON (volume, S-I length,
  position relative to the cord, T2 intensity ratio, vertebral levels).
- :mod:`.vertebrae`: vertebral level names of SCT label maps and the segment-height estimate.
"""
