"""The commands' workflows: typed requests in, the pipeline's stages run in order, outputs written.

``segmentation`` is the work of ``sct_deepseg_imlesion``, ``classification`` that of
``sct_classify_lesion``; ``models`` says which package each step uses. The cohort runner reuses
both with models loaded once per worker.
"""
