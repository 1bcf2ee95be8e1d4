"""cardioseg: cardiac image segmentation from real data to clinical numbers."""

__version__ = "0.1.0"
