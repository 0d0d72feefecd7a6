"""Reading and writing NIfTI images and BIDS datasets."""
