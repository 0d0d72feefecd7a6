"""Intramedullary spinal cord lesion segmentation and differential diagnosis, as an SCT plugin.

The package is laid out as the pipeline runs: ``io`` (NIfTI in and out) -> ``cord`` (localization
and crop) -> ``lesion`` (segmentation, postprocessing, morphometry) -> ``classify`` (diagnosis)
-> ``qc``. ``modelpkg`` loads verified model packages, ``phantom`` makes synthetic data, ``train``
trains and evaluates models, ``batch`` runs cohorts and ``cli`` holds the thin commands.
"""

__version__ = "0.1.0"
