"""Evaluation: segmentation metrics as papers report them (see ``cardioseg.evaluation.metrics``)."""
