"""Training and export of the pipeline's models (PyTorch + MONAI; never imported at inference)."""
