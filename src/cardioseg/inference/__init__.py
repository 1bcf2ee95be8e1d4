"""Inference: running a trained model on preprocessed arrays, and on raw files."""
