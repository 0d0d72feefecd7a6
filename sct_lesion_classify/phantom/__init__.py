"""Synthetic sagittal T2w spine MRI with intramedullary lesions, and a BIDS writer.

``generate_subject`` makes one subject (arrays in the canonical orientation of ``io.image``);
``write_dataset`` writes a BIDS dataset (SPEC section 6). Modules, one job each: ``geometry``
(acquisition), ``anatomy`` (spine, cord, surroundings), ``lesions`` (the four classes and their
signs), ``cohort`` (class-conditional distributions, ``difficult``), ``raster`` (exact partial
volume across thick slices), ``render`` (intensities, bias, noise), ``measure`` (lesion statistics
from the masks), ``dataset`` (BIDS).
"""

from sct_lesion_classify.phantom.cohort import DIAGNOSES
from sct_lesion_classify.phantom.measure import LesionStats
from sct_lesion_classify.phantom.subject import PhantomSubject, generate_subject

__all__ = ["DIAGNOSES", "LesionStats", "PhantomSubject", "generate_subject", "write_dataset"]


def __getattr__(name: str):
    if name == "write_dataset":
        from sct_lesion_classify.phantom.dataset import write_dataset
        return write_dataset
    raise AttributeError(name)
