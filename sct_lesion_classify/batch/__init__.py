"""Cohort runner of ``sct_lesion_classify batch`` (SPEC section 7).

- :mod:`~sct_lesion_classify.batch.cohort`: subjects of a BIDS dataset, include/exclude patterns,
  output paths under ``derivatives/sct_lesion_classify/``, and the check that a subject's
  outputs are complete and valid (what makes a run resumable).
- :mod:`~sct_lesion_classify.batch.subject_job`: the per-subject job (segmentation and
  classification) with a per-process cache of the loaded models; the same function runs in
  local worker processes and on Dask workers.
- :mod:`~sct_lesion_classify.batch.table`: one typed row per subject and the cohort CSV
  (``diagnoses.csv``), written atomically.
- :mod:`~sct_lesion_classify.batch.lesion_table`: every subject's lesion table in one CSV
  (``lesion_seg_analysis.csv``), rebuilt from the subjects' files.
- :mod:`~sct_lesion_classify.batch.runner`: local processes or a Dask distributed scheduler;
  the CSV is rewritten after every finished subject.
"""
