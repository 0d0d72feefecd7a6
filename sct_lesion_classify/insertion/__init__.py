"""Synthetic lesions painted inside the cord of real healthy scans (``insert-lesions``).

A site without patients can turn its own healthy controls into labelled training and validation
data: lesions of the four classes (astrocytoma, ependymoma, MS, NMOSD), drawn with the phantoms'
class-conditional statistics (``phantom.cohort`` and ``phantom.lesions``: Zhuo et al. Table 1),
are painted into the real image, inside its cord mask, following the cord's centreline.

Modules, one job each, in the order the command uses them:

- ``sources``: the healthy inputs (an image and its cord mask, or a BIDS dataset of controls),
  loaded and checked;
- ``cord_frame``: the cord measured from its mask, axial slice by axial slice (centreline, radii,
  length along the cord);
- ``plan``: one lesion drawn for one cord (class statistics, parts, placement along the cord) and
  the refusal of a cord too short for it;
- ``paint``: painting one planned lesion into one image (intensity from the cord's own, partial
  volume at the edge, the image's noise level kept) and its truth mask;
- ``measure``: the inserted lesion's morphometry (volume, count, extent, eccentricity, T2 ratio);
- ``dataset``: the BIDS dataset of cases, written into a hidden folder and renamed at the end.
"""
