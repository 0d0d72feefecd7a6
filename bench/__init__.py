"""Benchmarks of sct_lesion_classify: run ``python -m bench`` from the repository root."""
