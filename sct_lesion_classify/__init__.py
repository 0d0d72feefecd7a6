"""Intramedullary spinal cord lesion segmentation and differential diagnosis, as an SCT plugin.

The package is laid out as the pipeline runs: ``io`` (NIfTI in and out) -> ``modelpkg`` (verified
model packages) -> ``runtime`` (where the networks run) -> ``cord`` (localization and crop) ->
``lesion`` (segmentation, postprocessing, morphometry) -> ``classify`` (diagnosis) -> ``qc`` ->
``pipeline`` (the commands' workflows). ``phantom`` and ``insertion`` make synthetic data,
``train`` trains and evaluates models, ``batch`` runs cohorts and ``cli`` holds the thin commands.
"""

__version__ = "0.1.0"

#: The project's source repository: ``CodeURL`` of the BIDS ``GeneratedBy`` entries it writes.
PROJECT_URL = "https://github.com/sct-lesion-classify/sct_lesion_classify"
