"""Networks trained by ``sct_lesion_classify train`` (PyTorch; imported only for training)."""
