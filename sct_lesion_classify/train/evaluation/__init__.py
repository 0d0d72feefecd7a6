"""Evaluation of trained models on a BIDS split: metrics, baseline, report."""
